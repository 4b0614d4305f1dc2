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

use blackbox_tests::{eventually, http_get, wait_until};
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

/// A flood of keep-alive connections, each idle after one answer: the oldest are closed to stay
/// at the cap, the newest are kept, and a good client still gets its answer. Each connection is
/// stamped by its answer, one after the other, so which made no progress the longest is known;
/// and an idle connection is kept 120 s, so nothing but the cap closes one while the test runs
/// (a flood of connections that send nothing would also meet the 10 s head deadline, which a
/// loaded machine can reach before the test has looked).
#[tokio::test]
async fn at_the_cap_a_new_connection_pushes_out_the_longest_idle_and_a_review_is_still_answered() {
    raise_own_open_files_limit();
    let webhook = Webhook::start("cap", &committed("server-ecdsa"), &["--v=2"]);
    let client = webhook.client();
    let flood = 100;
    let mut idle = Vec::new();
    for _ in 0..CAP + flood {
        let mut connection = client.connect().await.expect("a connection");
        let (status, _) = connection.get("/healthz").await.expect("an answer");
        assert_eq!(status, StatusCode::OK);
        idle.push(connection);
    }
    eventually("the oldest connections are pushed out", || async {
        idle[..flood].iter().all(Connection::is_closed)
    })
    .await;
    assert!(
        !idle[flood..].iter().any(Connection::is_closed),
        "the newest are kept"
    );

    let answer = client.post(sample()).await.expect("an answer at the cap");
    assert_eq!(answer.status, StatusCode::OK);
    eventually("the longest-idle one made room", || async {
        idle[flood].is_closed()
    })
    .await;
    assert!(!idle[flood + 1..].iter().any(Connection::is_closed));
    let log = webhook.log();
    assert!(!log.contains("no complete request head in time"), "{log}");
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

/// A good review on a new connection once a second for 20 s, as the attacks' victims: the
/// latencies of those answered 200, and what went wrong with the others.
async fn good_reviews_for_20_seconds(client: &Client) -> (Vec<Duration>, Vec<String>) {
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
    (latencies, failures)
}

/// One attacker connection of issue 21, over and over until `stop`: a TLS handshake, a request
/// head that announces the largest body allowed (issue 21's announced 7 MiB, now refused at its
/// head), 10 bytes of body, then silence until the server closes it. Counts each connection it
/// opens.
async fn stall_mid_body(client: Client, opened: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    let head = format!("{}{{\"kind\": \"", review_head(MAX_BODY));
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
/// from `bench/flood.py`, the `stall` rows).
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
    eventually("the stalled connections reach the cap", || async {
        webhook.log().contains("connection cap reached")
    })
    .await;

    let (mut latencies, failures) = good_reviews_for_20_seconds(&client).await;
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

/// `MAX_BODY_BYTES` in adapters/src/http/admission.rs.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Issue 26's first attack: connections that announce the largest body allowed and send all of
/// it but its last byte, then fall silent.
const LARGE_BODIES: usize = 16;

/// Issue 26's second: connections that drip a byte of body every 100 ms.
const DRIPPERS: usize = 520;

/// The peak RSS the webhook aims for (docs/webhook.md), whatever clients send.
const AIM_KIB: u64 = 32 * 1024;

/// The release build's idle RSS (README, `bench/flood.py`: 5.9 MiB), rounded down: what an
/// attack may add to it is the aim less this.
const RELEASE_IDLE_KIB: u64 = 5 * 1024;

/// The release build's RSS per idle TLS connection (README, `bench/flood.py`: 23.7 KiB).
const RELEASE_KIB_PER_CONNECTION: f64 = 23.7;

/// How many idle connections measure this build's cost per connection.
const MEASURED_CONNECTIONS: usize = 200;

/// One attacker connection, over and over until `stop`: a TLS handshake, `opening`, then `drip`
/// every 100 ms (or nothing) until the server closes it. Counts each connection it opens.
async fn hold_connection(
    client: Client,
    opening: Vec<u8>,
    drip: &'static [u8],
    opened: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tls) = client.tls().await else {
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        if tls.write_all(&opening).await.is_err() {
            continue;
        }
        if drip.is_empty() {
            let mut sink = [0u8; 1024];
            while matches!(tls.read(&mut sink).await, Ok(n) if n > 0) {}
            continue;
        }
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        while !stop.load(Ordering::Relaxed) {
            ticks.tick().await;
            if tls.write_all(drip).await.is_err() || tls.flush().await.is_err() {
                break;
            }
        }
    }
}

/// Attackers of `connections` connections each, until the returned flag is set.
fn attack(
    client: &Client,
    connections: usize,
    opening: &[u8],
    drip: &'static [u8],
) -> (
    Arc<AtomicUsize>,
    Arc<AtomicBool>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let opened = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = (0..connections)
        .map(|_| {
            tokio::spawn(hold_connection(
                client.clone(),
                opening.to_vec(),
                drip,
                Arc::clone(&opened),
                Arc::clone(&stop),
            ))
        })
        .collect();
    (opened, stop, tasks)
}

/// Issue 26: 16 connections each announcing the largest body allowed and sending all of it but
/// its last byte, then falling silent, and 520 connections each dripping a byte of body every
/// 100 ms, all reopened when closed, while a good review is sent on a new connection once a
/// second for 20 s. Every review is answered 200, and the webhook's peak RSS stays within the
/// 32 MiB aim. This tier runs the debug build, whose idle RSS (14 MiB against 6 MiB) and
/// connections (its tasks' futures are unoptimised) cost more than the release build's. So what
/// is asserted is what the attack adds to the idle webhook: at most the room the aim leaves the
/// release build (32 MiB less its idle RSS), scaled by how much more this build's connection
/// costs than the release build's, measured here with 200 idle connections (each answered once,
/// so a little more than the release figure's bare handshakes: the scale errs loose, by well
/// under the gap to the unbounded webhook's 68 MB with 9 attackers). The release build's own
/// peak under both attacks is in README (`bench/flood.py`, the issue-26 rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_held_over_all_connections_stay_within_the_bound_and_good_reviews_are_answered() {
    raise_own_open_files_limit();
    let webhook = Webhook::start("bodies", &committed("server-ecdsa"), &[]);
    let client = webhook.client();
    let answer = client.post(sample()).await.expect("an answer");
    assert_eq!(answer.status, StatusCode::OK);
    let idle = rss_kib(webhook.pid());
    let mut measured = Vec::new();
    for _ in 0..MEASURED_CONNECTIONS {
        let mut connection = client.connect().await.expect("a connection");
        let (status, _) = connection.get("/healthz").await.expect("an answer");
        assert_eq!(status, StatusCode::OK);
        measured.push(connection);
    }
    let per_connection =
        rss_kib(webhook.pid()).saturating_sub(idle) as f64 / MEASURED_CONNECTIONS as f64;
    drop(measured);
    let scale = (per_connection / RELEASE_KIB_PER_CONNECTION).max(1.0);
    reset_peak_rss(webhook.pid());

    let mut large = review_head(MAX_BODY).into_bytes();
    large.resize(large.len() + MAX_BODY - 1, b' ');
    let (large_opened, large_stop, large_tasks) = attack(&client, LARGE_BODIES, &large, b"");
    let drip_head = review_head(MAX_BODY).into_bytes();
    let (drip_opened, drip_stop, drip_tasks) = attack(&client, DRIPPERS, &drip_head, b" ");
    eventually("every attacker has connected", || async {
        large_opened.load(Ordering::Relaxed) >= LARGE_BODIES
            && drip_opened.load(Ordering::Relaxed) >= DRIPPERS
    })
    .await;

    let (mut latencies, failures) = good_reviews_for_20_seconds(&client).await;
    let peak = peak_rss_kib(webhook.pid());
    for stop in [&large_stop, &drip_stop] {
        stop.store(true, Ordering::Relaxed);
    }
    drop(webhook);
    for task in large_tasks.into_iter().chain(drip_tasks) {
        task.await.expect("an attacker");
    }

    latencies.sort();
    // The cast rounds a figure of tens of thousands of KiB down.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let allowance = ((AIM_KIB - RELEASE_IDLE_KIB) as f64 * scale) as u64;
    eprintln!(
        "{LARGE_BODIES} large stalled bodies (opened {}), {DRIPPERS} drippers (opened {}): good reviews p50 {:?}, max {:?}; webhook RSS idle {idle} KiB, {per_connection:.1} KiB per idle connection (scale {scale:.2} of the release build's), peak {peak} KiB: the attack added {} KiB, allowed {allowance} KiB",
        large_opened.load(Ordering::Relaxed),
        drip_opened.load(Ordering::Relaxed),
        latencies.get(latencies.len() / 2),
        latencies.last(),
        peak.saturating_sub(idle)
    );
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "every good review answered 200"
    );
    assert!(
        peak.saturating_sub(idle) <= allowance,
        "the attack added {} KiB to the idle {idle} KiB: more than the {allowance} KiB the aim leaves",
        peak - idle
    );
}

/// The resident set size of process `pid` (`VmRSS`), in KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Resets the peak RSS of process `pid` (Linux: 5 into `clear_refs`), so the next peak is the
/// test's alone.
fn reset_peak_rss(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("the peak RSS reset");
}

/// The peak resident set size of process `pid` (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in {status}"))
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
