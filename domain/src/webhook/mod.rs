//! The pod webhook: adds `KUBERNETES_SERVICE_HOST=<--apiserver-fqdn>` to the containers of new
//! Pods.

pub mod answer;
pub mod fqdn;
pub mod give_way;
mod json;
pub mod outcome;
pub mod readiness;
pub mod review;
pub mod rule;
pub mod shutdown;
