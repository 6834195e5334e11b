//! Replays every fuzz target's corpus (`fuzz/corpus/TARGET/`) and every crash reproducer
//! found so far (`fuzz/regressions/TARGET/`) through the same entry points the fuzzers
//! call, so a normal `cargo test` guards what fuzzing has learned.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use atrest::fuzzing::TARGETS;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_replays_cleanly() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, run) in TARGETS {
        let corpus = inputs(&fuzz.join("corpus").join(target));
        assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty: seed it");
        let regressions = inputs(&fuzz.join("regressions").join(target));
        for (path, data) in corpus.iter().chain(&regressions) {
            if std::panic::catch_unwind(|| run(data)).is_err() {
                panic!("{target} panicked on {path}");
            }
        }
    }
}

#[test]
fn every_fuzz_target_has_a_binary() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, _) in TARGETS {
        let source =
            std::fs::read_to_string(fuzz.join("fuzz_targets").join(format!("{target}.rs")))
                .unwrap();
        assert!(
            source.contains(&format!("atrest::fuzzing::{target}(")),
            "fuzz_targets/{target}.rs calls another entry point"
        );
    }
}
