//! Fuzz target: `rootmark_issuer::fuzzing::ek_certificate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::ek_certificate(data);
});
