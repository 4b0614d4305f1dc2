//! The test harness: find the built binaries, run tests in network namespaces of their own.
//! Used by the black-box tests of this crate and by the kernel tier in `adapters/tests`.

pub mod apiserver;
pub mod cluster;
pub mod docker;
pub mod netns;
pub mod sidecar;

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
/// cargo counts a test that returns early as passed, so each skip is also written to
/// [`SKIPPED_LIST`], which `make test` counts and prints after cargo's own summary.
pub fn skip(name: &str, why: &str) {
    if std::env::var("REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{name}: REQUIRE_PRIVILEGED=1 but the test cannot run: {why}");
    }
    eprintln!("SKIPPED {name}: {why}");
    record_skip(&format!("{name}: {why}"));
}

/// The list of this run's skips, one a line, under the target directory (`make test` removes it
/// before the run).
pub const SKIPPED_LIST: &str = "skipped-tests.txt";

fn record_skip(line: &str) {
    use std::io::Write;
    let Some(target) = target_dir() else {
        return;
    };
    // One write of a whole line to a file opened for appending: test threads and binaries that
    // skip at once do not interleave their lines.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(target.join(SKIPPED_LIST))
        .and_then(|mut file| file.write_all(format!("{}\n", line.replace('\n', " ")).as_bytes()));
    if let Err(error) = written {
        eprintln!("could not add the skip to {SKIPPED_LIST}: {error}");
    }
}

/// target/, from the test's own path: target/<profile>/deps/<test>.
fn target_dir() -> Option<PathBuf> {
    let test_exe = std::env::current_exe().ok()?;
    Some(test_exe.parent()?.parent()?.parent()?.to_path_buf())
}

/// Polls `check` every 5 ms until it holds, for at most 10 s; the bound only keeps a broken test
/// from hanging, it asserts nothing about speed.
pub fn wait_until(what: &str, check: impl Fn() -> bool) {
    wait_until_within(what, std::time::Duration::from_secs(10), check);
}

/// [`wait_until`] with another bound, for a scenario that takes longer by design (a retry after
/// an outage).
#[allow(clippy::disallowed_types)] // The test's own deadline, not code under test.
pub fn wait_until_within(what: &str, bound: std::time::Duration, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + bound;
    while std::time::Instant::now() < deadline {
        if check() {
            return;
        }
        #[allow(clippy::disallowed_methods)] // The test's own pacing, not code under test.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("timed out waiting until {what}");
}

/// Polls `check` every 10 ms until it holds, for at most 20 s; the bound only keeps a broken test
/// from hanging, it asserts nothing about speed. The async twin of [`wait_until`], for tests that
/// run in a tokio runtime.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(10));
    for _ in 0..2000 {
        ticks.tick().await;
        if check().await {
            return;
        }
    }
    panic!("timed out waiting until {what}");
}

/// A plain HTTP/1.0 GET to `127.0.0.1:port` from the calling thread's network namespace:
/// `(status, body)`.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of one series (`name{labels}`) in a Prometheus text exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Checks an exposition with the reference OpenMetrics parser (Python's prometheus_client);
/// `Err` names what is wrong, or that the parser is not installed.
pub fn check_openmetrics(text: &str) -> Result<(), String> {
    use std::io::Write;
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\nlist(parse(sys.stdin.read()))";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A bad flag, as both binaries must answer it: exit 2 and one line on stderr naming `named`
/// (the flag or the value).
pub fn assert_one_line_flag_error(output: &std::process::Output, named: &str) {
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(named), "{stderr}");
}

/// `--version` and `--help`, as both binaries must answer them: exit 0 with a first line on
/// stdout that names `program` and the workspace's version.
pub fn assert_names_the_version(output: &std::process::Output, program: &str) {
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!("{program} {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(stdout.lines().next(), Some(expected.as_str()), "{stdout}");
}
