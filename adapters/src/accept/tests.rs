use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rstest::rstest;
use tokio::sync::Notify;

use super::*;
use crate::clock::TokioClock;

/// A listener that answers from a script, and says when the script has run out.
struct Scripted {
    script: Mutex<VecDeque<Option<i32>>>,
    done: Notify,
}

impl Scripted {
    /// `None` accepts a connection, `Some(errno)` fails with that error.
    fn new(script: impl IntoIterator<Item = Option<i32>>) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            done: Notify::new(),
        }
    }
}

impl Listener for Scripted {
    type Stream = ();

    fn accept(&self) -> impl Future<Output = io::Result<((), SocketAddr)>> + Send {
        let next = self.script.lock().expect("the script").pop_front();
        if next.is_none() {
            self.done.notify_one();
        }
        async move {
            match next {
                Some(None) => Ok(((), SocketAddr::from(([127, 0, 0, 1], 1)))),
                Some(Some(errno)) => Err(io::Error::from_raw_os_error(errno)),
                None => std::future::pending().await,
            }
        }
    }
}

/// The log lines written while `run` runs, at debug and above.
async fn logged<F: Future<Output = ()>>(run: F) -> Vec<String> {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("the sink").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .without_time()
        .with_writer({
            let sink = sink.clone();
            move || sink.clone()
        })
        .finish();
    // The test runtime is single-threaded: every poll of `run` happens on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    run.await;
    let text = String::from_utf8(sink.0.lock().expect("the sink").clone()).expect("UTF-8");
    text.lines().map(str::to_owned).collect()
}

/// Runs the loop over `script` until it runs out: the log lines, the connections served, and the
/// clock time it took.
async fn run(script: Vec<Option<i32>>) -> (Vec<String>, usize, Duration) {
    let listener = Scripted::new(script);
    let clock = TokioClock::default();
    let mut served = 0;
    let lines = logged(accept_until(
        &listener,
        &clock,
        "test",
        listener.done.notified(),
        |(), _| served += 1,
    ))
    .await;
    (lines, served, clock.now())
}

fn failures(errno: i32, count: usize) -> impl Iterator<Item = Option<i32>> {
    std::iter::repeat_n(Some(errno), count)
}

#[rstest]
#[case::out_of_descriptors(libc::EMFILE)]
#[case::system_out_of_descriptors(libc::ENFILE)]
#[case::out_of_socket_memory(libc::ENOBUFS)]
#[case::out_of_memory(libc::ENOMEM)]
#[tokio::test(start_paused = true)]
async fn a_lasting_condition_pauses_each_retry_and_is_logged_once_when_it_starts_and_once_when_it_ends(
    #[case] errno: i32,
) {
    let script = failures(errno, 1000).chain([None]).collect();
    let (lines, served, took) = run(script).await;
    assert_eq!(served, 1);
    assert!(
        took >= PAUSE * 1000,
        "1000 failures, each followed by a pause of {PAUSE:?}, took {took:?}"
    );
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].contains("WARN") && lines[0].contains("cannot accept connections"));
    assert!(lines[1].contains("INFO") && lines[1].contains("accepting connections again"));
    assert!(lines[1].contains("failed=1000"), "{}", lines[1]);
}

#[tokio::test(start_paused = true)]
async fn lost_connections_are_retried_at_once_and_logged_at_debug_only_at_the_edges() {
    let script = failures(libc::ECONNABORTED, 500).chain([None]).collect();
    let (lines, served, took) = run(script).await;
    assert_eq!(served, 1);
    assert_eq!(took, Duration::ZERO, "no pause after a lost connection");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines.iter().all(|line| line.contains("DEBUG")),
        "{lines:#?}"
    );
    assert!(lines[1].contains("failed=500"), "{}", lines[1]);
}

#[tokio::test(start_paused = true)]
async fn a_change_of_condition_ends_the_old_one_and_starts_the_new_one() {
    let script = failures(libc::EMFILE, 3)
        .chain(failures(libc::ENOBUFS, 2))
        .chain([None, None])
        .collect();
    let (lines, served, _) = run(script).await;
    assert_eq!(served, 2);
    let edges: Vec<_> = lines
        .iter()
        .map(|line| {
            let condition = ["out of file descriptors", "out of socket memory"]
                .into_iter()
                .find(|name| line.contains(name))
                .unwrap_or("?");
            let edge = if line.contains("again") {
                "end"
            } else {
                "start"
            };
            (condition, edge)
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("out of file descriptors", "start"),
            ("out of file descriptors", "end"),
            ("out of socket memory", "start"),
            ("out of socket memory", "end"),
        ],
        "{lines:#?}"
    );
    assert!(lines[1].contains("failed=3") && lines[3].contains("failed=2"));
}

#[tokio::test(start_paused = true)]
async fn accepts_without_errors_log_nothing() {
    let (lines, served, _) = run(vec![None; 100]).await;
    assert_eq!(served, 100);
    assert!(lines.is_empty(), "{lines:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_a_pause_stops_the_loop() {
    let listener = Scripted::new(failures(libc::EMFILE, 1_000_000));
    let clock = TokioClock::default();
    accept_until(
        &listener,
        &clock,
        "test",
        clock.sleep(PAUSE * 3 + PAUSE / 2),
        |(), _| {},
    )
    .await;
    let left = listener.script.lock().expect("the script").len();
    assert_eq!(1_000_000 - left, 4, "one accept, then one after each pause");
}

#[rstest]
#[case(libc::EMFILE, Condition::OutOfDescriptors)]
#[case(libc::ENFILE, Condition::OutOfDescriptors)]
#[case(libc::ENOBUFS, Condition::OutOfMemory)]
#[case(libc::ENOMEM, Condition::OutOfMemory)]
#[case(libc::ECONNABORTED, Condition::ConnectionLost)]
#[case(libc::EPROTO, Condition::ConnectionLost)]
#[case(libc::EPERM, Condition::ConnectionLost)]
#[case(libc::EBADF, Condition::Other)]
fn errors_are_sorted_into_conditions(#[case] errno: i32, #[case] condition: Condition) {
    assert_eq!(
        Condition::of(&io::Error::from_raw_os_error(errno)),
        condition
    );
}
