//! Black-box tier: the built `apiserver-proxy-pod-webhook` at its limits: the cap on open
//! connections, the open-file limit, running out of descriptors.

#[path = "webhook/harness.rs"]
#[allow(dead_code)] // Each test file uses a part of the shared harness.
mod harness;

use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use blackbox_tests::{http_get, wait_until};
use harness::*;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `MAX_CONNECTIONS` in adapters/src/http/server.rs, which a black-box test cannot read.
const CAP: usize = 512;

/// `MAX_CONNECTIONS` in adapters/src/metrics/server.rs.
const METRICS_CAP: usize = 64;

fn committed(pair: &str) -> std::path::PathBuf {
    testdata(&format!("certs/{pair}"))
}

/// Whether the server has closed `stream`, without waiting.
fn closed_by_server(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("non-blocking");
    match stream.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != ErrorKind::WouldBlock,
    }
}

/// This test process holds hundreds of connections: its soft open-file limit may be too low.
fn raise_own_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("the limits");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("the soft limit raised");
}

/// The limit a running process has, as `/proc/PID/limits` shows it: `(soft, hard)`.
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("the limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("the open-file limit");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().expect("soft").to_owned();
    let hard = fields.next().expect("hard").to_owned();
    (soft, hard)
}

/// A flood of connections that send nothing (handshakes never started) and an idle TLS
/// connection: the oldest are closed to stay at the cap, the newest are kept, and a good client
/// still gets its answer.
#[tokio::test]
async fn at_the_cap_a_new_connection_pushes_out_the_longest_idle_and_a_review_is_still_answered() {
    raise_own_open_files_limit();
    let webhook = Webhook::start("cap", &committed("server-ecdsa"), &["--v=2"]);
    let client = webhook.client();
    let mut idle_tls = client.tls().await.expect("an idle TLS connection");
    let flood = 100;
    let plain: Vec<_> = (0..CAP + flood)
        .map(|_| TcpStream::connect(("127.0.0.1", webhook.port)).expect("a TCP connection"))
        .collect();
    let pushed_out = |log: &str| log.matches("pushed out by a newer connection").count();
    // The TLS connection and the first `flood` plain ones: 101 over the cap.
    wait_until("the oldest connections are pushed out", || {
        pushed_out(&webhook.log()) == flood + 1
    });
    let closed: Vec<bool> = plain.iter().map(closed_by_server).collect();
    assert!(
        !webhook.log().contains("no complete request head in time"),
        "closed by the head deadline, not by the cap: the test ran too slowly to tell"
    );
    assert_eq!(closed.iter().filter(|&&c| c).count(), flood);
    assert!(closed[..flood].iter().all(|&c| c), "the oldest are closed");
    assert!(!closed[flood..].iter().any(|&c| c), "the newest are kept");
    let mut buffer = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), idle_tls.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the idle TLS connection, the oldest, is closed: {read:?}"
    );

    let answer = client.post(sample()).await.expect("an answer at the cap");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(pushed_out(&webhook.log()), flood + 2, "one more made room");
    assert!(closed_by_server(&plain[flood]), "the longest-idle one");
}

/// The metrics port has a cap of its own, reached with plain TCP connections that send nothing:
/// the oldest are closed to stay at the cap, the newest are kept, and the probes are answered.
#[test]
fn at_the_metrics_ports_cap_a_new_connection_pushes_out_the_longest_idle_and_probes_are_answered() {
    raise_own_open_files_limit();
    let webhook = Webhook::start("metrics-cap", &committed("server-ecdsa"), &["--v=2"]);
    let flood = 10;
    let idle: Vec<_> = (0..METRICS_CAP + flood)
        .map(|_| TcpStream::connect(("127.0.0.1", webhook.metrics_port)).expect("a connection"))
        .collect();
    wait_until("the oldest metrics connections are pushed out", || {
        idle[..flood].iter().all(closed_by_server)
    });
    assert!(
        !webhook
            .log()
            .lines()
            .any(|line| line.contains("no complete request head in time")
                && line.contains("server=\"metrics\"")),
        "closed by the head deadline, not by the cap: the test ran too slowly to tell"
    );
    assert!(
        !idle[flood..].iter().any(closed_by_server),
        "the newest are kept"
    );

    let (status, _) = http_get(webhook.metrics_port, "/healthz").expect("/healthz at the cap");
    assert_eq!(status, 200);
    wait_until("the longest-idle one made room", || {
        closed_by_server(&idle[flood])
    });
    assert!(!idle[flood + 1..].iter().any(closed_by_server));
}

/// How many connections the stall attack keeps (issue 21): more than the cap.
const STALLED: usize = 520;

/// One attacker connection of issue 21, over and over until `stop`: a TLS handshake, a request
/// head that announces 7 MiB, 10 bytes of body, then silence until the server closes it. Counts
/// each connection it opens.
async fn stall_mid_body(client: Client, opened: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: 7340032\r\n\r\n{{\"kind\": \""
    );
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tls) = client.tls().await else {
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        if tls.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut sink = [0u8; 1024];
        while matches!(tls.read(&mut sink).await, Ok(n) if n > 0) {}
    }
}

/// Issue 21: 520 connections parked mid-body, each reopened when the server closes it, and a
/// good review on a new connection once a second for 20 s. Every review is answered 200: at the
/// cap the connection that made no progress the longest goes, whatever its phase. The reviews'
/// latency and the webhook's peak RSS are printed (figures, not assertions: README has them
/// from `bench/flood.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stalled_mid_body_do_not_lock_out_a_good_client() {
    raise_own_open_files_limit();
    let webhook = Webhook::start("stall", &committed("server-ecdsa"), &[]);
    let client = webhook.client();
    let opened = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..STALLED)
        .map(|_| {
            let attack = stall_mid_body(client.clone(), Arc::clone(&opened), Arc::clone(&stop));
            tokio::spawn(attack)
        })
        .collect();
    wait_until("the stalled connections reach the cap", || {
        webhook.log().contains("connection cap reached")
    });

    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..20 {
        ticks.tick().await;
        let started = tokio::time::Instant::now();
        match client.post(sample()).await {
            Ok(answer) if answer.status == StatusCode::OK => latencies.push(started.elapsed()),
            Ok(answer) => failures.push(format!("answered {}", answer.status)),
            Err(error) => failures.push(error),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reopened = opened.load(Ordering::Relaxed) - STALLED;
    let peak = peak_rss_kib(webhook.pid());
    drop(webhook);
    for attacker in attackers {
        attacker.await.expect("an attacker");
    }

    latencies.sort();
    eprintln!(
        "{STALLED} connections stalled mid-body, reopened {reopened} times: good reviews p50 {:?}, max {:?}; webhook peak RSS {} KiB",
        latencies.get(latencies.len() / 2),
        latencies.last(),
        peak
    );
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "every good review answered 200"
    );
    assert!(
        reopened > 0,
        "the attack pushed out and reopened connections"
    );
}

/// The peak resident set size of process `pid` (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let webhook = Webhook::start_with_open_files("rlimit", &committed("server-ecdsa"), 256, 4096);
    assert_eq!(
        open_files_limit(webhook.pid()),
        ("4096".to_owned(), "4096".to_owned())
    );
}

/// With 64 descriptors, connections held to the TLS port use them all up; a connection to the
/// metrics port then cannot be accepted either. Each listener pauses between accepts and logs the
/// condition once (the metrics port once spun, writing a line per failed accept); when the
/// connections close, both serve again.
#[tokio::test]
async fn out_of_descriptors_both_ports_log_once_and_serve_again_once_connections_close() {
    let webhook = Webhook::start_with_open_files("descriptors", &committed("server-ecdsa"), 64, 64);
    let connect = |port: u16| TcpStream::connect(("127.0.0.1", port)).expect("a TCP connection");
    let out_of_descriptors = |server: &str| {
        let log = webhook.log();
        log.lines()
            .filter(|line| line.contains("cannot accept connections"))
            .any(|line| line.contains(&format!("server=\"{server}\"")))
    };
    let mut held: Vec<_> = (0..80).map(|_| connect(webhook.port)).collect();
    wait_until("the TLS port is out of descriptors", || {
        out_of_descriptors("webhook")
    });
    held.extend((0..10).map(|_| connect(webhook.metrics_port)));
    wait_until("the metrics port is out of descriptors", || {
        out_of_descriptors("metrics")
    });
    // Time for a spinning loop to show: thousands of lines where a paused one writes none.
    #[allow(clippy::disallowed_methods)] // The test's own pacing.
    std::thread::sleep(Duration::from_secs(1));
    let log = webhook.log();
    assert_eq!(log.matches("cannot accept connections").count(), 2, "{log}");
    assert_eq!(log.matches("out of file descriptors").count(), 2, "{log}");
    assert!(log.lines().count() < 20, "{log}");

    drop(held);
    wait_until("the metrics port answers again", || {
        http_get(webhook.metrics_port, "/healthz").is_ok_and(|(status, _)| status == 200)
    });
    let answer = webhook.client().post(sample()).await.expect("served again");
    assert_eq!(answer.status, StatusCode::OK);
    let log = webhook.log();
    for server in ["webhook", "metrics"] {
        assert!(
            log.lines()
                .filter(|line| line.contains("accepting connections again"))
                .any(|line| line.contains(&format!("server=\"{server}\""))),
            "{server}: {log}"
        );
    }
}
