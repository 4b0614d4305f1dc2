//! The test harness: find the built binaries, run tests in network namespaces of their own.
//! Used by the black-box tests of this crate and by the kernel tier in `adapters/tests`.

pub mod netns;

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

/// Polls `check` every 5 ms until it holds, for at most 10 s; the bound only keeps a broken test
/// from hanging, it asserts nothing about speed.
pub fn wait_until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..2000 {
        if check() {
            return;
        }
        #[allow(clippy::disallowed_methods)] // The test's own pacing, not code under test.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("timed out waiting until {what}");
}
