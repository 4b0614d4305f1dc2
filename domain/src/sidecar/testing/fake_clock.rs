//! A clock whose sleeps are recorded and return at once (or never).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::ports::Clock;

/// Sleeps return at once (or never, for event tests) and are recorded, so loops run without
/// real time passing.
#[derive(Debug, Default)]
pub struct FakeClock {
    pub sleeps: Mutex<Vec<Duration>>,
    pub sleep_forever: bool,
    /// Sleeps after this many never end: a loop that would go on for ever stops there.
    pub forever_after: Option<usize>,
}

#[async_trait]
impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.sleeps.lock().unwrap().len() as u64)
    }

    async fn sleep(&self, duration: Duration) {
        let slept = {
            let mut sleeps = self.sleeps.lock().unwrap();
            sleeps.push(duration);
            sleeps.len()
        };
        if self.sleep_forever || self.forever_after.is_some_and(|last| slept > last) {
            futures::future::pending::<()>().await;
        }
    }
}
