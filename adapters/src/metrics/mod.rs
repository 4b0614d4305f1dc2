//! Prometheus metrics and health endpoints, over plain HTTP on an opt-in address.

use prometheus_client::registry::Registry;

mod build_info;
pub mod flags;
pub mod routes;
pub mod server;
pub mod sidecar;
pub mod webhook;

/// What a program exposes on its metrics address.
pub trait Exposition: Send + Sync + 'static {
    /// The OpenMetrics text of every metric.
    fn metrics(&self) -> String;
    /// `Ok` while the process does its job; `Err(why)` when it should be restarted.
    fn healthy(&self) -> Result<(), String>;
    /// `Ok` when the process's work is in place; `Err(why)` otherwise.
    fn ready(&self) -> Result<(), String>;
}

/// The OpenMetrics text of `registry`.
fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}
