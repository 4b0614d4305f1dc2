//! Running one iptables tool and translating how it failed into a [`RuleCommandError`].

use std::ffi::OsString;
use std::io;
use std::process::Stdio;
use std::time::Duration;

use domain::sidecar::model::RuleCommandError;

/// How the iptables tools are run: how long a change waits for the xtables lock, and what they
/// find in their environment beyond what this process has.
#[derive(Debug, Clone)]
pub struct Tools {
    lock_wait: Duration,
    env: Vec<(OsString, OsString)>,
}

impl Default for Tools {
    /// Waits 5 s for the lock: long enough for kube-proxy's `iptables-restore` of a large node,
    /// short enough that a stuck lock shows in the log well before the next sync.
    fn default() -> Self {
        Self {
            lock_wait: Duration::from_secs(5),
            env: Vec::new(),
        }
    }
}

impl Tools {
    /// How long a change waits for the xtables lock (legacy backend only; nft has no lock).
    /// iptables counts whole seconds: this rounds up, and waits at least one.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Sets a variable for every tool this runs, beyond the environment they inherit. The kernel
    /// tier's seam: it gives each test a private `XTABLES_LOCKFILE`, so no test takes the host's
    /// lock, and an empty `PATH`. The sidecar does not call it: its tools inherit its own
    /// environment, where an operator sets `XTABLES_LOCKFILE` (docs/iptables.md).
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The argument of `-w`: whole seconds, rounded up, at least one.
    pub(crate) fn lock_wait_seconds(&self) -> u64 {
        let seconds = self.lock_wait.as_secs() + u64::from(self.lock_wait.subsec_nanos() > 0);
        seconds.max(1)
    }

    /// Runs `program` with `args` and returns its stdout, or why it failed.
    pub(crate) async fn run(
        &self,
        program: &str,
        args: &[&str],
    ) -> Result<String, RuleCommandError> {
        let command = || {
            [program]
                .iter()
                .chain(args)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        };
        tracing::trace!(command = %command(), "running");
        let output = tokio::process::Command::new(program)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            // A sync dropped mid-way (shutdown) must not leave a tool behind.
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|error| spawn_failure(program, command(), &error))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = match stderr.trim() {
            "" => output.status.to_string(),
            text => text.to_owned(),
        };
        Err(exit_failure(
            command(),
            output.status.code(),
            stderr,
            Duration::from_secs(self.lock_wait_seconds()),
        ))
    }
}

fn spawn_failure(program: &str, command: String, error: &io::Error) -> RuleCommandError {
    match error.kind() {
        io::ErrorKind::NotFound => RuleCommandError::BinaryMissing {
            binary: program.to_owned(),
        },
        _ => RuleCommandError::CommandFailed {
            command,
            stderr: format!("could not start: {error}"),
        },
    }
}

/// iptables exits with 4 (RESOURCE_PROBLEM) when `-w` ran out waiting for the lock, and says so;
/// 4 alone also covers other resource problems (an nft transaction that lost a race), which are
/// plain failures.
fn exit_failure(
    command: String,
    code: Option<i32>,
    stderr: String,
    waited: Duration,
) -> RuleCommandError {
    if code == Some(4) && stderr.contains("holding the xtables lock") {
        RuleCommandError::LockBusy { command, waited }
    } else {
        RuleCommandError::CommandFailed { command, stderr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const LOCKED: &str =
        "Another app is currently holding the xtables lock. Stopped waiting after 5s.";

    #[rstest]
    #[case::lock_busy(Some(4), LOCKED, true)]
    #[case::other_resource_problem(Some(4), "iptables: Resource temporarily unavailable.", false)]
    #[case::bad_rule(
        Some(1),
        "iptables: Bad rule (does a matching rule exist in that chain?).",
        false
    )]
    #[case::killed(None, "signal: 9 (SIGKILL)", false)]
    fn only_a_lock_timeout_is_lock_busy(
        #[case] code: Option<i32>,
        #[case] stderr: &str,
        #[case] busy: bool,
    ) {
        let error = exit_failure(
            "iptables -w 5".into(),
            code,
            stderr.into(),
            Duration::from_secs(5),
        );
        let expected = if busy {
            RuleCommandError::LockBusy {
                command: "iptables -w 5".into(),
                waited: Duration::from_secs(5),
            }
        } else {
            RuleCommandError::CommandFailed {
                command: "iptables -w 5".into(),
                stderr: stderr.into(),
            }
        };
        assert_eq!(error, expected);
    }

    #[rstest]
    #[case::not_found(io::ErrorKind::NotFound, RuleCommandError::BinaryMissing { binary: "iptables-nft".into() })]
    #[case::denied(io::ErrorKind::PermissionDenied, RuleCommandError::CommandFailed { command: "iptables-nft -L".into(), stderr: "could not start: denied".into() })]
    fn a_missing_program_is_binary_missing(
        #[case] kind: io::ErrorKind,
        #[case] expected: RuleCommandError,
    ) {
        let error = io::Error::new(kind, "denied");
        assert_eq!(
            spawn_failure("iptables-nft", "iptables-nft -L".into(), &error),
            expected
        );
    }

    #[rstest]
    #[case::whole(Duration::from_secs(5), 5)]
    #[case::rounded_up(Duration::from_millis(1500), 2)]
    #[case::at_least_one(Duration::ZERO, 1)]
    fn the_lock_wait_is_whole_seconds(#[case] wait: Duration, #[case] seconds: u64) {
        assert_eq!(
            Tools::default().with_lock_wait(wait).lock_wait_seconds(),
            seconds
        );
    }
}
