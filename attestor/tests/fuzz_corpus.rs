//! Replays every committed fuzz corpus file of the attestor's targets
//! (`src/fuzzing.rs`) through its target, so CI guards the parsers against
//! every input the fuzzers found interesting (and every crash they ever
//! found) without running a fuzzer.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::path::Path;

use rootmark_attestor::fuzzing;

#[test]
fn every_fuzz_corpus_file_replays_without_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
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
            source.contains(&format!("rootmark_attestor::fuzzing::{target}(data)")),
            "{target}"
        );
    }
    assert!(!fuzzing::run("no-such-target", b""));
}
