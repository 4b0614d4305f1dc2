//! Addresses: list, add with global scope, delete. Like `ip addr show|add|del`.

use std::collections::HashMap;

use async_trait::async_trait;
use domain::ports::AddressManager;
use domain::sidecar::desired::{InterfaceName, ProxyAddress};
use domain::sidecar::model::{Link, MarkedAddress, MarkedLink, NetError, ADDRESS_PROTOCOL};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressProtocol, AddressScope,
};
use rtnetlink::packet_route::AddressFamily;

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

/// Whether the address carries our protocol mark.
fn is_marked(message: &AddressMessage) -> bool {
    message.attributes.iter().any(|attribute| {
        matches!(attribute, AddressAttribute::Protocol(protocol) if *protocol == AddressProtocol::from(ADDRESS_PROTOCOL))
    })
}

/// The IPv6 link-local addresses the kernel gives every link that goes up: not what "holds an
/// address" means for a link of ours.
fn is_kernel_link_local(message: &AddressMessage) -> bool {
    message.header.family == AddressFamily::Inet6 && message.header.scope == AddressScope::Link
}

impl Netlink {
    /// `ip addr show`
    async fn all_addresses(&self) -> Result<Vec<AddressMessage>, NetError> {
        self.handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| translate("ip addr show", &e))
    }
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

    /// `ip addr add ADDRESS/PREFIX dev INDEX scope global proto 97 [nodad]`
    async fn add_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        let nodad = if address.is_ipv6() { " nodad" } else { "" };
        let operation = format!(
            "ip addr add {address} dev {index} scope global proto {ADDRESS_PROTOCOL}{nodad}"
        );
        let mut request = self
            .handle
            .address()
            .add(index, address.ip(), address.prefix_len());
        let message = request.message_mut();
        // Global scope, even on lo: host scope breaks Cilium's BPF masquerading.
        message.header.scope = AddressScope::Universe;
        // The mark that tells our addresses from anyone else's; Linux before 5.18 ignores it.
        message
            .attributes
            .push(AddressAttribute::Protocol(ADDRESS_PROTOCOL.into()));
        if address.is_ipv6() {
            // No duplicate address detection: a /128 of the node's own on a node-local link has
            // no neighbour to collide with, and without DAD it is usable at once rather than
            // "tentative" for a second or more after the one-shot returned.
            message.header.flags |= AddressHeaderFlags::Nodad;
        }
        tolerating(request.execute().await, &operation, &[libc::EEXIST])
    }

    /// `ip addr show` filtered on `proto 97`, host prefixes only.
    async fn marked_addresses(&self) -> Result<Vec<MarkedAddress>, NetError> {
        let names: HashMap<u32, String> = self
            .all_links()
            .await?
            .into_iter()
            .map(|link| (link.index, link.name))
            .collect();
        let mut marked = Vec::new();
        for message in self.all_addresses().await? {
            let Some(ip) = ip_of(&message).filter(|_| is_marked(&message)) else {
                continue;
            };
            let Ok(address) = ip.to_string().parse::<ProxyAddress>() else {
                continue;
            };
            if address.prefix_len() != message.header.prefix_len {
                continue;
            }
            let index = message.header.index;
            marked.push(MarkedAddress {
                index,
                interface: names
                    .get(&index)
                    .cloned()
                    .unwrap_or_else(|| index.to_string()),
                address,
            });
        }
        Ok(marked)
    }

    /// `ip link show` filtered on `alias apiserver-proxy`, with whether each holds an address.
    async fn marked_links(&self) -> Result<Vec<MarkedLink>, NetError> {
        let links = self.aliased_links().await?;
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let addresses = self.all_addresses().await?;
        Ok(links
            .into_iter()
            .map(|link| MarkedLink {
                holds_addresses: addresses
                    .iter()
                    .any(|m| m.header.index == link.index && !is_kernel_link_local(m)),
                link,
            })
            .collect())
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
