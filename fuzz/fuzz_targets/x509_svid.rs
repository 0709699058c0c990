//! Fuzz target: `rootmark_sdk::fuzzing::x509_svid`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_sdk::fuzzing::x509_svid(data);
});
