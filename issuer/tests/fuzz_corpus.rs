//! Replays every committed fuzz corpus file through its target, so CI guards
//! the parsers against every input the fuzzers found interesting (and every
//! crash they ever found) without running a fuzzer.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::path::Path;

use rootmark_issuer::fuzzing;

#[test]
fn every_fuzz_corpus_file_replays_without_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0usize;
    for target in fuzzing::TARGETS {
        let dir = corpus.join(target);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus for {target} missing at {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(!entries.is_empty(), "corpus for {target} is empty");
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            assert!(fuzzing::run(target, &data), "unknown target {target}");
            replayed += 1;
        }
    }
    assert!(replayed >= fuzzing::TARGETS.len());
}

#[test]
fn every_target_has_a_cargo_fuzz_entry_point() {
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    for target in fuzzing::TARGETS {
        let source = std::fs::read_to_string(targets.join(format!("{target}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{target}.rs: {e}"));
        assert!(
            source.contains(&format!("rootmark_issuer::fuzzing::{target}(data)")),
            "{target}"
        );
    }
    assert!(!fuzzing::run("no-such-target", b""));
}
