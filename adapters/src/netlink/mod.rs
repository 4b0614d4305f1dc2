//! rtnetlink behind the domain's `Addresses` and `Links` ports, and link/address change events.
//!
//! One request connection ([`Netlink`]) and one multicast subscription ([`events`]), so that
//! notifications never interleave with request replies.

mod address;
mod error;
pub mod events;
mod link;

use domain::sidecar::model::NetError;
use rtnetlink::Handle;

/// The `Addresses` and `Links` of the network namespace the process runs in.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a netlink route socket and drives it on the current tokio runtime.
    pub fn connect() -> Result<Self, NetError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| NetError::Failed {
                operation: "open a netlink route socket".into(),
                message: e.to_string(),
            })?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }
}
