//! Fuzz target: `rootmark_issuer::fuzzing::csr`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::csr(data);
});
