//! The pod webhook: adds `KUBERNETES_SERVICE_HOST=<--apiserver-fqdn>` to the containers of new
//! Pods.

pub mod fqdn;
mod json;
pub mod outcome;
pub mod pod_patch;
pub mod pod_view;
pub mod review;
