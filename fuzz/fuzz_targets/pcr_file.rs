//! Fuzz target: `rootmark_issuer::fuzzing::pcr_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::pcr_file(data);
});
