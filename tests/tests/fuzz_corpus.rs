//! Replays the checked-in fuzz corpus as ordinary tests: every file of `fuzz/corpus/<target>/`
//! goes through the target's own body (`fuzz/src/targets.rs`, included below, the very code
//! the cargo-fuzz binaries run), on stable Rust and without libFuzzer. A panic anywhere is a
//! failure that names the file; see fuzz/README.md for how to reproduce and minimise it.

#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The names of the files in `dir` (without extension), sorted.
fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let stem = path.file_stem().expect("a file name");
            stem.to_string_lossy().into_owned()
        })
        .collect()
}

/// Runs every corpus file of `name` through its target; fails naming each file that panicked.
fn replay(name: &str) {
    let (_, run) = targets::TARGETS
        .iter()
        .find(|(target, _)| *target == name)
        .unwrap_or_else(|| panic!("no fuzz target {name} in fuzz/src/targets.rs"));
    let dir = fuzz_dir().join("corpus").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "fuzz target {name} panicked on {} of {} corpus files:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        const REPLAYED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*
    };
}

replay_tests!(
    envelope,
    minion_request,
    master_reply,
    publication,
    signed_publication,
    publication_header,
    control_request,
    control_event,
    noise_respond,
    noise_finish,
    session_open,
    group_decrypt,
    signature_verify,
    key_file,
    zmtp_stream,
    master_rep,
    minion_pub,
);

/// Every target is replayed here, has a cargo-fuzz binary and a corpus, and nothing else does:
/// a target added on one side only fails here instead of going unreplayed.
#[test]
fn every_target_is_replayed() {
    let targets: BTreeSet<String> = targets::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let replayed: BTreeSet<String> = REPLAYED.iter().map(|name| name.to_string()).collect();
    assert_eq!(replayed, targets, "the replay tests above and TARGETS");
    let fuzz = fuzz_dir();
    assert_eq!(
        names_in(&fuzz.join("fuzz_targets")),
        targets,
        "fuzz/fuzz_targets/*.rs and TARGETS"
    );
    assert_eq!(
        names_in(&fuzz.join("corpus")),
        targets,
        "fuzz/corpus/* and TARGETS"
    );
}
