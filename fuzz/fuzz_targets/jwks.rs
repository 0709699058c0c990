//! Fuzz target: `rootmark_sdk::fuzzing::jwks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_sdk::fuzzing::jwks(data);
});
