//! Fuzz target: `rootmark_sdk::fuzzing::endpoint_address`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_sdk::fuzzing::endpoint_address(data);
});
