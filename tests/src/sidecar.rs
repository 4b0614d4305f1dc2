//! Running the built `apiserver-proxy-sidecar` and looking at what it keeps, from the calling
//! thread's network namespace (see [`crate::netns::in_netns`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::binary;
use crate::netns::try_sh;

pub const SIDECAR: &str = "apiserver-proxy-sidecar";

/// The built sidecar, for a test that runs it through another program (`prlimit`).
pub fn binary_path() -> std::path::PathBuf {
    binary(SIDECAR)
}

pub fn sidecar(args: &[&str]) -> Command {
    let mut command = Command::new(binary_path());
    command.args(args);
    command
}

pub fn output(args: &[&str]) -> Output {
    sidecar(args).output().expect("the sidecar runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The logs of running sidecars, by pid. A thread drains each one's stderr as it is written: a
/// pipe that nobody reads fills at 64 KiB, and the sidecar would then block on its next log line
/// (a long soak logs that much). What it read so far is readable while the sidecar runs.
type Log = (Arc<Mutex<Vec<u8>>>, JoinHandle<()>);
static LOGS: Mutex<BTreeMap<u32, Log>> = Mutex::new(BTreeMap::new());

/// A running sidecar, as [`start`] and [`spawn`] return it: a [`Child`] that does not outlive its
/// test. [`finish`] (or [`terminate`]) ends it and hands back its log; dropped before that, as
/// when an assertion fails first, it is killed and reaped, so no sidecar keeps running (and
/// keeps its network namespace alive) after the test.
#[derive(Debug)]
pub struct Sidecar(Option<Child>);

impl Deref for Sidecar {
    type Target = Child;

    fn deref(&self) -> &Child {
        self.0
            .as_ref()
            .expect("a sidecar is running until finished")
    }
}

impl DerefMut for Sidecar {
    fn deref_mut(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("a sidecar is running until finished")
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
            // Its log reader ends at the closed pipe; nobody reads the log now.
            lock(&LOGS).remove(&child.id());
        }
    }
}

/// Starts the sidecar with its log (stderr) collected, to be read when it ends.
pub fn start(args: &[&str]) -> Sidecar {
    spawn(sidecar(args))
}

pub fn spawn(mut command: Command) -> Sidecar {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sidecar starts");
    let mut pipe = child.stderr.take().expect("stderr is piped");
    let log = Arc::new(Mutex::new(Vec::new()));
    let written = log.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0; 4096];
        while let Ok(read @ 1..) = pipe.read(&mut chunk) {
            lock(&written).extend_from_slice(&chunk[..read]);
        }
    });
    lock(&LOGS).insert(child.id(), (log, reader));
    Sidecar(Some(child))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the running sidecar has logged so far, to wait for a line.
pub fn log_so_far(child: &Child) -> String {
    lock(&LOGS)
        .get(&child.id())
        .map(|(log, _)| String::from_utf8_lossy(&lock(log)).into_owned())
        .unwrap_or_default()
}

/// Waits for the exit: its status and everything it logged.
pub fn finish(mut sidecar: Sidecar) -> Output {
    let mut child = sidecar.0.take().expect("a sidecar is finished once");
    let status = child.wait().expect("the sidecar exits");
    let stderr = match lock(&LOGS).remove(&child.id()) {
        Some((log, reader)) => {
            let _ = reader.join();
            std::mem::take(&mut *lock(&log))
        }
        None => Vec::new(),
    };
    Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}

pub fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).expect("the signal is delivered");
}

/// SIGTERM, then the exit status and everything it logged.
pub fn terminate(child: Sidecar) -> Output {
    signal(&child, Signal::SIGTERM);
    finish(child)
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
