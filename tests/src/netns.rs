//! The kernel tier's harness: every test runs in a fresh network namespace of its own, never the
//! host's.

use std::future::Future;
use std::process::Command;

use crate::skip;

/// Runs `test` on a thread of its own that first moves into a new, empty network namespace (with
/// `lo` up). Processes the test spawns inherit the namespace, so `ip` and `iptables` see only it.
/// When the namespace cannot be made (not root), the test is skipped loudly, or fails when
/// `REQUIRE_PRIVILEGED=1`.
pub fn in_netns<F, Fut>(name: &'static str, test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::Builder::new().name(name.to_owned());
    let outcome = thread
        .spawn(move || {
            if let Err(errno) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
                skip(
                    name,
                    &format!("cannot create a network namespace: {errno} (run as root)"),
                );
                return;
            }
            sh("ip link set lo up");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            runtime.expect("a tokio runtime").block_on(test());
        })
        .expect("a test thread")
        .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs a shell command in the calling thread's network namespace and returns its stdout. Panics
/// with the command's stderr when it fails.
pub fn sh(command: &str) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .expect("sh runs");
    assert!(
        output.status.success(),
        "`{command}` failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Like [`sh`], but returns the exit status and both outputs instead of asserting success.
pub fn try_sh(command: &str) -> (bool, String, String) {
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .expect("sh runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
