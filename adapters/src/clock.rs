//! The domain's `Clock`, on tokio's timer.

use std::time::Duration;

use async_trait::async_trait;
use domain::ports::Clock;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    #[allow(clippy::disallowed_methods)] // This is the Clock: the one place that really sleeps.
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
