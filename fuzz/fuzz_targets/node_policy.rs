//! Fuzz target: `rootmark_issuer::fuzzing::node_policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::node_policy(data);
});
