//! Pure logic of apiserver-proxy. No I/O happens here: the outside world is reached only through
//! the ports, so every rule is tested against mocks and fakes.
//!
//! # Layout
//!
//! - [`ports`]: every port (`AddressManager`, `RuleManager`, `Clock`, `SyncObserver`) and the
//!   contracts their implementations keep.
//! - [`duration`]: Go's duration syntax, for `--sync-interval`.
//! - [`sidecar`]: the node agent.
//!   - `desired`: the address and interface from the flags, validated.
//!   - `address`: keeps the address on its interface (observe, plan, act; cleanup).
//!   - `rules`: the five conntrack-bypass rules as data, kept exactly once each.
//!   - `reconciler`: both together, as one sync.
//!   - `run`: the loop that decides when to sync (start, interval, network events, retries).
//!   - `repair`: what a sync changed, for logs and metrics.
//! - [`webhook`]: the pod webhook.
//!   - `fqdn`: `--apiserver-fqdn`, validated as Kubernetes validates a domain name.
//!   - `rule`: **the rule**, whole, in the shape of kube's `mutate()`: which reviews are
//!     considered, the opt-out label, mirror Pods, which containers get the variable, what counts
//!     as set already, the bound on list lengths, and the patch operations; with the facts it
//!     reads, as serde-derived structs.
//!   - `json`: the JSON leaves serde's derive lacks: values of an unexpected type kept as that
//!     type, lists kept up to a bound, lists asked whether any element says yes.
//!   - `review`: one AdmissionReview's bytes in, the answer out (v1 and v1beta1).
//!   - `answer`: the answer and its patch, written out.
//!   - `outcome`: what was decided, as metric labels and log fields.
//!   - `health`: ready while the served certificate is valid.

pub mod duration;
pub mod ports;
pub mod sidecar;
pub mod webhook;
