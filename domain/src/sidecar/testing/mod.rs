//! In-memory fakes of the ports, for tests that assert state across several syncs. Test builds
//! only; single decisions are tested against the mockall mocks of `crate::ports` instead.

mod fake_clock;
mod fake_net;
mod fake_rules;
mod recorder;
mod split;

pub use fake_clock::FakeClock;
pub use fake_net::FakeNet;
pub use fake_rules::FakeRules;
pub use recorder::Recorder;
pub use split::Split;
