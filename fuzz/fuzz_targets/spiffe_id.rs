//! Fuzz target: `rootmark_issuer::fuzzing::spiffe_id`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::spiffe_id(data);
});
