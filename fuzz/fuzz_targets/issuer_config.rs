//! Fuzz target: `rootmark_issuer::fuzzing::issuer_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::issuer_config(data);
});
