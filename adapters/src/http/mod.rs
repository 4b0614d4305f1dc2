//! The pod webhook's HTTPS side: hyper and tokio-rustls, one route.
//!
//! - [`server`]: binds, accepts (the shared loop in `crate::accept`), runs TLS handshakes and
//!   HTTP/1.1 connections with timeouts, shuts down gracefully.
//! - `connections`: the cap on open connections; at the cap a new one pushes out the one idle
//!   the longest (the metrics port's cap too).
//! - `plaintext`: plain HTTP on the TLS port gets Go's 400 answer.
//! - [`admission`]: the route: status codes for what cannot be a review, the domain for the rest.
//! - [`tls`]: the rustls configuration (TLS 1.2/1.3, client certificates).
//! - [`certs`]: reading certificate, key and client CA from PEM.
//! - [`reload`]: serves the last good certificate pair and reloads it when its files change.
//! - [`not_after`]: when a certificate expires, for the metrics, the log and readiness.
//! - `head_deadline`: closes a connection whose client sends no complete request head in time.
//! - [`routes`]: what the TLS port serves: the probes, and the admission route, counted.

pub mod admission;
pub mod certs;
pub(crate) mod connections;
pub(crate) mod head_deadline;
pub mod not_after;
mod plaintext;
pub mod reload;
pub mod routes;
pub mod server;
pub mod tls;
