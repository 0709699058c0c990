//! Fuzz target: `rootmark_attestor::fuzzing::cgroup`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_attestor::fuzzing::cgroup(data);
});
