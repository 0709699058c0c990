//! Fuzz target: `rootmark_issuer::fuzzing::tpmt_public`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::tpmt_public(data);
});
