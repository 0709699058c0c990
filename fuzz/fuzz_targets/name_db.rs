//! Fuzz target: `rootmark_attestor::fuzzing::name_db`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_attestor::fuzzing::name_db(data);
});
