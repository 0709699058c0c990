//! Replays every committed fuzz corpus file of the SDK's targets
//! (`src/fuzzing.rs`) through its target, so CI guards the parsers against
//! every input the fuzzers found interesting (and every crash they ever
//! found) without running a fuzzer.
//!
//! The seed files (`seed-*`) are written by
//! `cargo run -p rootmark-sdk --example fuzz-seeds`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

#[path = "support/fuzz_seeds.rs"]
mod fuzz_seeds;

use std::path::Path;

use fuzz_seeds::{Signers, claims, corpus, header};
use rootmark_sdk::fuzzing;

#[test]
fn every_fuzz_corpus_file_replays_without_panic() {
    let corpus = corpus();
    let mut replayed = 0usize;
    let mut failed = Vec::new();
    for target in fuzzing::TARGETS {
        let dir = corpus.join(target);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus for {target} missing at {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(!entries.is_empty(), "corpus for {target} is empty");
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            match std::panic::catch_unwind(|| fuzzing::run(target, &data)) {
                Ok(known) => assert!(known, "unknown target {target}"),
                Err(_) => failed.push(path.display().to_string()),
            }
            replayed += 1;
        }
    }
    assert!(failed.is_empty(), "corpus files that panic: {failed:#?}");
    assert!(replayed >= fuzzing::TARGETS.len());
}

#[test]
fn every_target_has_a_cargo_fuzz_entry_point() {
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    for target in fuzzing::TARGETS {
        let source = std::fs::read_to_string(targets.join(format!("{target}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{target}.rs: {e}"));
        assert!(
            source.contains(&format!("rootmark_sdk::fuzzing::{target}(data)")),
            "{target}"
        );
    }
    assert!(!fuzzing::run("no-such-target", b""));
}

/// The keys below are the private halves of `FUZZ_JWKS`, so the seed tokens
/// they sign reach the checks after the signature in `jwt_svid_validate`.
#[test]
fn seed_keys_sign_tokens_the_fuzz_bundle_accepts() {
    let signers = Signers::new();
    for (alg, kid) in [
        ("ES256", "fuzz-p256"),
        ("ES384", "fuzz-p384"),
        ("RS256", "fuzz-rsa2048"),
        ("PS256", "fuzz-rsa2048"),
    ] {
        let token = signers.sign(&header(alg, kid), &claims());
        let svid = rootmark_sdk::validate_jwt_svid(
            &token,
            fuzzing::jwt_bundle(),
            fuzzing::FUZZ_AUDIENCE,
            fuzzing::now(),
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(svid.key_id(), kid);
        fuzzing::jwt_svid_validate(token.as_bytes());
    }
}
