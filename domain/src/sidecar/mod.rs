//! The node agent: keep the proxy address (and optionally the conntrack-bypass rules) in place.

pub mod address;
pub mod desired;
pub mod health;
pub mod interval;
pub mod lifecycle;
pub mod model;
pub mod proxy;
pub mod reconciler;
pub mod repair;
pub mod report;
pub mod rules;
pub mod run;
pub mod stale;
pub mod startup_taint;
pub mod taint;

#[cfg(test)]
mod testing;
