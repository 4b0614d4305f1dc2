//! Pure logic of apiserver-proxy. No I/O happens here: the outside world is reached only through
//! the ports, so every rule is tested against mocks and fakes. The mockall mocks of the ports
//! exist in test builds only.
//!
//! # Layout
//!
//! - [`ports`]: every port (`Links`, `Addresses`, both as `Network`, `RuleManager`, `Clock`,
//!   `NodeTaints`, `SyncObserver`) and the contracts their implementations keep.
//! - [`duration`]: Go's duration syntax, for `--sync-interval`.
//! - [`dns_name`]: DNS-1123 labels and subdomains, for the webhook's FQDN and the sidecar's node
//!   name and taint key alike.
//! - [`sidecar`]: the node agent.
//!   - `desired`: the address and interface from the flags, validated.
//!   - `model`: the values the ports exchange (links, network events, rules) and their errors.
//!   - `address`: keeps the addresses on their interface (observe, plan, act), adopts the Go
//!     original's unmarked copy, removes earlier addresses named by `--remove-address`, collects
//!     stale addresses and links of ours, cleans up.
//!   - `rules`: the five conntrack-bypass rules for (address, port), kept exactly once each.
//!   - `stale`: telling a leftover from an entry with a living owner (remove once, yield to an
//!     owner that puts it back).
//!   - `reconciler`: [`sidecar::reconciler::NodeReconciler`], both together as one sync.
//!   - `report`: what a sync did and why it ran (repairs, errors, trigger), for logs, metrics
//!     and health.
//!   - `run`: the loop that decides when to sync (start, interval, network events, retries).
//!   - `lifecycle`: one-shot or daemon, cleanup, and the exit status.
//!   - `repair`: what a sync changed, for logs and metrics.
//!   - `health`: liveness and readiness from the sync reports.
//!   - `taint`: `--startup-taint` and `--node-name` validated, a taint, and the API's errors.
//!   - `startup_taint`: when the startup taint is removed (after a sync that put everything in
//!     place, once, retried with backoff) and what the log says about it.
//!   - `testing` (test builds only): in-memory fakes of the ports.
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
//!   - `readiness`: ready while the served certificate is valid and no shutdown has begun.
//!   - `shutdown`: the shutdown's phases (serving, draining through the delay, closing through
//!     the grace, stopped) and what each stop, the delay's end and the grace's end do.

pub mod dns_name;
pub mod duration;
pub mod ports;
pub mod sidecar;
pub mod webhook;
