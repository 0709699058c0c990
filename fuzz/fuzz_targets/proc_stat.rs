//! Fuzz target: `rootmark_attestor::fuzzing::proc_stat`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_attestor::fuzzing::proc_stat(data);
});
