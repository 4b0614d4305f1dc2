//! An observer that records every sync report, for tests of the loop.

use std::future::poll_fn;
use std::sync::Mutex;
use std::task::Poll;

use crate::ports::SyncObserver;
use crate::sidecar::report::{SyncReport, Trigger};

#[derive(Debug, Default)]
pub struct Recorder(pub Mutex<Vec<(Trigger, bool)>>);

impl SyncObserver for Recorder {
    fn sync_finished(&self, report: &SyncReport<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((report.trigger, report.outcome.succeeded()));
    }
}

impl Recorder {
    pub fn triggers(&self) -> Vec<Trigger> {
        self.0.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }

    /// Completes once `n` syncs were reported.
    pub async fn after(&self, n: usize) {
        poll_fn(|_| {
            if self.0.lock().unwrap().len() >= n {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}
