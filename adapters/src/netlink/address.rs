//! Addresses: list, add with global scope, delete. Like `ip addr show|add|del`.

use async_trait::async_trait;
use domain::ports::AddressManager;
use domain::sidecar::desired::{InterfaceName, ProxyAddress};
use domain::sidecar::model::{Link, NetError};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressScope};

use super::error::{tolerating, translate};
use super::Netlink;

/// The address a message carries: `IFA_LOCAL` where present (the interface's own address on
/// point-to-point links), else `IFA_ADDRESS`.
pub(super) fn ip_of(message: &AddressMessage) -> Option<std::net::IpAddr> {
    let find = |local: bool| {
        message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Local(ip) if local => Some(*ip),
                AddressAttribute::Address(ip) if !local => Some(*ip),
                _ => None,
            })
    };
    find(true).or_else(|| find(false))
}

#[async_trait]
impl AddressManager for Netlink {
    async fn link_by_name(&self, name: &InterfaceName) -> Result<Option<Link>, NetError> {
        self.get_link(name).await
    }

    async fn create_dummy_link(&self, name: &InterfaceName) -> Result<Link, NetError> {
        self.add_dummy_link(name).await
    }

    async fn set_link_up(&self, index: u32) -> Result<(), NetError> {
        self.link_up(index).await
    }

    async fn delete_link(&self, index: u32) -> Result<(), NetError> {
        self.del_link(index).await
    }

    /// `ip addr show to ADDRESS/PREFIX`
    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<u32>, NetError> {
        let request = self
            .handle
            .address()
            .get()
            .set_address_filter(address.ip())
            .set_prefix_length_filter(address.prefix_len())
            .execute();
        let messages: Vec<AddressMessage> = request
            .try_collect()
            .await
            .map_err(|e| translate(&format!("ip addr show to {address}"), &e))?;
        let mut indices: Vec<u32> = messages.iter().map(|m| m.header.index).collect();
        indices.dedup();
        Ok(indices)
    }

    /// `ip addr add ADDRESS/PREFIX dev INDEX scope global`
    async fn add_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        let operation = format!("ip addr add {address} dev {index} scope global");
        let mut request = self
            .handle
            .address()
            .add(index, address.ip(), address.prefix_len());
        // Global scope, even on lo: host scope breaks Cilium's BPF masquerading.
        request.message_mut().header.scope = AddressScope::Universe;
        tolerating(request.execute().await, &operation, &[libc::EEXIST])
    }

    /// `ip addr del ADDRESS/PREFIX dev INDEX`
    async fn delete_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        let operation = format!("ip addr del {address} dev {index}");
        // The add request builds exactly the message that names this address on this link.
        let mut add = self
            .handle
            .address()
            .add(index, address.ip(), address.prefix_len());
        let result = self
            .handle
            .address()
            .del(add.message_mut().clone())
            .execute()
            .await;
        // Absent address: EADDRNOTAVAIL; link gone: ENODEV.
        tolerating(result, &operation, &[libc::EADDRNOTAVAIL, libc::ENODEV])
    }
}
