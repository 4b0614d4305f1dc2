//! Shared harness of the black-box tests: find the built binaries and run them.

use std::path::PathBuf;

/// The path of a binary of this workspace, built by `cargo build` into the same target directory
/// as the test (`make test` builds them first).
pub fn binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (make test does)",
        path.display()
    );
    path
}

/// Says loudly that a privileged test did not run; with `REQUIRE_PRIVILEGED=1` that is a failure.
pub fn skip(name: &str, why: &str) {
    if std::env::var("REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{name}: REQUIRE_PRIVILEGED=1 but the test cannot run: {why}");
    }
    eprintln!("SKIPPED {name}: {why}");
}
