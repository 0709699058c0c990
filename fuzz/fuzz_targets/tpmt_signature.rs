//! Fuzz target: `rootmark_issuer::fuzzing::tpmt_signature`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::tpmt_signature(data);
});
