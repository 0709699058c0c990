//! Fuzz target: `rootmark_issuer::fuzzing::workload_key`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::workload_key(data);
});
