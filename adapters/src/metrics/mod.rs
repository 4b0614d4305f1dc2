//! Prometheus metrics and health endpoints, over plain HTTP on an opt-in address.

pub mod server;
pub mod sidecar;

/// What a program exposes on its metrics address.
pub trait Exposition: Send + Sync + 'static {
    /// The OpenMetrics text of every metric.
    fn metrics(&self) -> String;
    /// `Ok` while the process does its job; `Err(why)` when it should be restarted.
    fn healthy(&self) -> Result<(), String>;
    /// `Ok` when the process's work is in place; `Err(why)` otherwise.
    fn ready(&self) -> Result<(), String>;
}
