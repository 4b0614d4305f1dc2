//! The kernel tier's harness lives with the black-box harness, so there is one of it.

pub use blackbox_tests::eventually;
pub use blackbox_tests::netns::*;
