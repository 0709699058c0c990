//! Fuzz target: `rootmark_attestor::fuzzing::http2_headers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_attestor::fuzzing::http2_headers(data);
});
