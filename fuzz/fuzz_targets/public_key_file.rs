//! Fuzz target: `rootmark_issuer::fuzzing::public_key_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rootmark_issuer::fuzzing::public_key_file(data);
});
