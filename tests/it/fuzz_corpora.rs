//! The fuzz targets' corpora and every input that ever crashed one, replayed
//! on stable Rust in the ordinary test run: a regression shows here without
//! fuzzing (fuzz/README.md says how to fuzz and where crashes go).

use std::path::Path;

#[test]
fn every_fuzz_corpus_and_regression_replays_without_a_panic() {
    // Unoptimised, the deepest inputs (regexes and YAML nested to the
    // libraries' own limits) need more than a test thread's 2 MiB of stack;
    // the release build replays them in 2 MiB (measured), as a tokio worker has.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(replay_all)
        .expect("spawning the replay thread")
        .join()
        .expect("the replay thread");
}

fn replay_all() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, target) in kopeo::fuzzing::TARGETS {
        let mut replayed = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(dir) = std::fs::read_dir(root.join(kind).join(name)) else {
                continue;
            };
            let mut inputs: Vec<_> = dir.flatten().map(|e| e.path()).collect();
            inputs.sort();
            for input in inputs {
                let data = std::fs::read(&input).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} panics", input.display());
                replayed += 1;
            }
        }
        assert!(
            replayed > 0,
            "fuzz target {name} has no corpus under fuzz/corpus/{name}"
        );
    }
}
