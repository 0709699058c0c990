//! Fuzz target: `rootmark_issuer::fuzzing::event_log`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::event_log(data);
});
