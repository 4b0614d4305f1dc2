//! The image tier's harness: containers of the project's images, run by the local Docker engine
//! through the `docker` CLI.
//!
//! Not testcontainers: its Docker client (bollard 0.19) speaks only Docker API 1.48 and does not
//! negotiate, while the engine these machines can install (Debian bookworm's docker.io 20.10)
//! answers at most 1.41 ("client version 1.48 is too new"); it also cannot set the sysctl that
//! IPv6 on `lo` needs. The CLI negotiates, and says in its stderr what went wrong.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::skip;

/// The tag `make docker-images` gives both images: the workspace version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The local bookworm base (`make docker-base`): `ip`, `iptables-save` of both backends, a shell
/// and perl, for the containers that stand in for a Pod's pause container and for a proxy.
pub const BASE_IMAGE: &str = "apiserver-proxy-base:bookworm";

pub fn sidecar_image() -> String {
    format!("apiserver-proxy:{VERSION}")
}

pub fn webhook_image() -> String {
    format!("apiserver-proxy-pod-webhook:{VERSION}")
}

/// Runs `docker args...`.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

/// Whether an engine answers and the images are built; if not, the test is skipped loudly (a
/// failure with `REQUIRE_PRIVILEGED=1`).
pub fn images_ready(test: &str) -> bool {
    let info = Command::new("docker").args(["info"]).output();
    if !info.is_ok_and(|output| output.status.success()) {
        skip(
            test,
            "no Docker engine answers (as root: make docker-engine)",
        );
        return false;
    }
    for image in [sidecar_image(), webhook_image(), BASE_IMAGE.to_owned()] {
        if !docker(&["image", "inspect", &image]).status.success() {
            skip(
                test,
                &format!("image {image} is missing (make docker-images builds it)"),
            );
            return false;
        }
    }
    true
}

/// A container started with `docker run -d`, removed (with its anonymous volumes) on drop.
#[derive(Debug)]
pub struct Container {
    pub name: String,
}

impl Container {
    /// `docker run -d --name <unique> args...`; `args` are docker's options, the image and its
    /// arguments. The name is unique (process id, counter), so tests run in parallel.
    pub fn run(role: &str, args: &[&str]) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "apiserver-proxy-test-{role}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        // A container left over from a killed earlier run of the same process id.
        let _ = docker(&["rm", "-f", &name]);
        let output = docker(&[&["run", "-d", "--name", &name], args].concat());
        assert!(
            output.status.success(),
            "docker run {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { name }
    }

    /// `--network container:<name>`: another container in this one's network namespace, as
    /// the containers of a Pod share the pause container's.
    pub fn network(&self) -> String {
        format!("container:{}", self.name)
    }

    /// `docker exec`: (success, stdout, stderr).
    pub fn exec(&self, command: &[&str]) -> (bool, String, String) {
        let output = docker(&[&["exec", &self.name], command].concat());
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `docker exec` that must succeed: its stdout.
    pub fn sh(&self, command: &[&str]) -> String {
        let (ok, stdout, stderr) = self.exec(command);
        assert!(ok, "{command:?} in {}: {stderr}", self.name);
        stdout
    }

    /// Everything the container wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let output = docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// `docker inspect -f template`, trimmed.
    pub fn inspect(&self, template: &str) -> String {
        let output = docker(&["inspect", "-f", template, &self.name]);
        assert!(output.status.success(), "docker inspect {}", self.name);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// `docker stop` (SIGTERM, then SIGKILL after 10 s): the exit code.
    pub fn stop(&self) -> i32 {
        let output = docker(&["stop", "-t", "10", &self.name]);
        assert!(output.status.success(), "docker stop {}", self.name);
        self.inspect("{{.State.ExitCode}}")
            .parse()
            .expect("an exit code")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}
