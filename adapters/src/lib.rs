//! The outside world behind the domain's ports.
//!
//! # Layout
//!
//! - [`http`]: the pod webhook's HTTPS server (hyper, tokio-rustls), with certificate reloading.

pub mod http;
