//! The pod webhook's HTTPS side: hyper and tokio-rustls, one route.
//!
//! - [`server`]: binds, accepts (the shared loop in `crate::accept`), runs TLS handshakes and
//!   HTTP/1.1 connections with timeouts, shuts down gracefully.
//!   The cap on open connections and the head deadline are `crate::connections`, shared with
//!   the metrics port.
//! - `plaintext`: plain HTTP on the TLS port gets Go's 400 answer.
//! - [`admission`]: the route: status codes for what cannot be a review, the domain for the rest.
//! - [`tls`]: the rustls configuration (TLS 1.2/1.3, client certificates).
//! - [`certs`]: reading certificate, key and client CA from PEM.
//! - [`reload`]: serves the last good certificate pair and reloads it when its files change.
//! - [`not_after`]: when a certificate expires, for the metrics, the log and readiness.
//! - [`routes`]: what the TLS port serves: the probes, and the admission route, counted.

pub mod admission;
pub mod certs;
pub mod not_after;
mod plaintext;
pub mod reload;
pub mod routes;
pub mod server;
pub mod tls;
