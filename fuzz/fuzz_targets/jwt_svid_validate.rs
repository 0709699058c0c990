//! Fuzz target: `rootmark_sdk::fuzzing::jwt_svid_validate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_sdk::fuzzing::jwt_svid_validate(data);
});
