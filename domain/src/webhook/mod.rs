//! The pod webhook: adds `KUBERNETES_SERVICE_HOST=<--apiserver-fqdn>` to the containers of new
//! Pods.

pub mod answer;
pub mod fqdn;
pub mod give_way;
pub mod health;
mod json;
pub mod outcome;
pub mod review;
pub mod rule;
