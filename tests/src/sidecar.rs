//! Running the built `apiserver-proxy-sidecar` and looking at what it keeps, from the calling
//! thread's network namespace (see [`crate::netns::in_netns`]).

use std::process::{Child, Command, Output, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::binary;
use crate::netns::try_sh;

pub const SIDECAR: &str = "apiserver-proxy-sidecar";

pub fn sidecar(args: &[&str]) -> Command {
    let mut command = Command::new(binary(SIDECAR));
    command.args(args);
    command
}

pub fn output(args: &[&str]) -> Output {
    sidecar(args).output().expect("the sidecar runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Starts the sidecar with its log (stderr) piped, to be read when it ends.
pub fn start(args: &[&str]) -> Child {
    spawn(sidecar(args))
}

pub fn spawn(mut command: Command) -> Child {
    command
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sidecar starts")
}

pub fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).expect("the signal is delivered");
}

/// SIGTERM, then the exit status and everything it logged.
pub fn terminate(child: Child) -> Output {
    signal(&child, Signal::SIGTERM);
    child.wait_with_output().expect("the sidecar exits")
}

pub fn on_lo(address: &str) -> bool {
    try_sh("ip addr show dev lo").1.contains(address)
}

/// How many lines of `save` (`iptables-save`, `ip6tables-legacy-save`, …) are ours.
pub fn our_rules(save: &str) -> usize {
    try_sh(&format!("{save} 2>/dev/null"))
        .1
        .lines()
        .filter(|line| line.contains("apiserver-proxy"))
        .count()
}

/// Whether iptables is installed; a test that needs it skips (or fails) loudly without it.
pub fn has_iptables(test: &str) -> bool {
    let found = try_sh("command -v iptables-save && command -v iptables-legacy-save").0;
    if !found {
        crate::skip(test, "iptables is not installed (make deps)");
    }
    found
}
