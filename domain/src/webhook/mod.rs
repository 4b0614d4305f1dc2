//! The pod webhook: adds `KUBERNETES_SERVICE_HOST=<--apiserver-fqdn>` to the containers of new
//! Pods.

pub mod fqdn;
pub mod outcome;
pub mod pod_patch;
pub mod review;
