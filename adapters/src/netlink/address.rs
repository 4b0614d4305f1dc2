//! Addresses: list, add with global scope and our mark, adopt, delete. Like `ip addr
//! show|add|replace|del`.

use std::collections::HashMap;

use async_trait::async_trait;
use domain::ports::Addresses;
use domain::sidecar::desired::ProxyAddress;
use domain::sidecar::model::{Adoption, Holder, MarkedAddress, NetError, ADDRESS_PROTOCOL};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressProtocol,
    AddressScope,
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

fn is_global(message: &AddressMessage) -> bool {
    message.header.scope == AddressScope::Universe
}

/// Whether the address is as [`Addresses::add_address`] adds it: marked, global scope.
fn is_as_ours(message: &AddressMessage) -> bool {
    is_marked(message) && is_global(message)
}

/// The IPv6 link-local addresses the kernel gives every link that goes up: not what "holds an
/// address" means for a link of ours.
pub(super) fn is_kernel_link_local(message: &AddressMessage) -> bool {
    message.header.family == AddressFamily::Inet6 && message.header.scope == AddressScope::Link
}

/// How an address request treats a copy that is there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Keep it (`NLM_F_EXCL`; `EEXIST` means done).
    Keep,
    /// Update it in place (`NLM_F_REPLACE`): the protocol from Linux 6.3 for IPv4 (5.18 for
    /// IPv6), never the scope of an IPv4 address.
    Replace,
}

impl Netlink {
    /// `ip addr show`
    pub(super) async fn all_addresses(&self) -> Result<Vec<AddressMessage>, NetError> {
        self.handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| translate("ip addr show", &e))
    }

    /// `ip addr show to ADDRESS/PREFIX`
    async fn copies_of(&self, address: &ProxyAddress) -> Result<Vec<AddressMessage>, NetError> {
        self.copies_at(address, address.prefix_len()).await
    }

    /// `ip addr show to ADDRESS/PREFIX_LEN`
    async fn copies_at(
        &self,
        address: &ProxyAddress,
        prefix_len: u8,
    ) -> Result<Vec<AddressMessage>, NetError> {
        self.handle
            .address()
            .get()
            .set_address_filter(address.ip())
            .set_prefix_length_filter(prefix_len)
            .execute()
            .try_collect()
            .await
            .map_err(|e| {
                translate(
                    &format!("ip addr show to {}/{prefix_len}", address.ip()),
                    &e,
                )
            })
    }

    /// `ip addr add|replace ADDRESS/PREFIX dev INDEX scope global proto 97 [nodad]
    /// [noprefixroute]`. `prefix_len` is the address's own, or one less for the bridge of
    /// [`Addresses::adopt_address`], which gets no prefix route so it routes nothing but itself.
    async fn put(
        &self,
        index: u32,
        address: &ProxyAddress,
        prefix_len: u8,
        existing: Existing,
    ) -> Result<(), NetError> {
        let bridge = prefix_len != address.prefix_len();
        let verb = match existing {
            Existing::Keep => "add",
            Existing::Replace => "replace",
        };
        let nodad = if address.is_ipv6() { " nodad" } else { "" };
        let noprefixroute = if bridge { " noprefixroute" } else { "" };
        let operation = format!(
            "ip addr {verb} {}/{prefix_len} dev {index} scope global proto {ADDRESS_PROTOCOL}{nodad}{noprefixroute}",
            address.ip()
        );
        let mut request = self.handle.address().add(index, address.ip(), prefix_len);
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
        if bridge {
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Noprefixroute));
        }
        match existing {
            Existing::Keep => tolerating(request.execute().await, &operation, &[libc::EEXIST]),
            Existing::Replace => tolerating(request.replace().execute().await, &operation, &[]),
        }
    }

    /// `ip addr del ADDRESS/PREFIX dev INDEX`
    async fn del(
        &self,
        index: u32,
        address: &ProxyAddress,
        prefix_len: u8,
    ) -> Result<(), NetError> {
        let operation = format!("ip addr del {}/{prefix_len} dev {index}", address.ip());
        // The add request builds exactly the message that names this address on this link.
        let mut add = self.handle.address().add(index, address.ip(), prefix_len);
        let result = self
            .handle
            .address()
            .del(add.message_mut().clone())
            .execute()
            .await;
        // Absent address: EADDRNOTAVAIL; link gone: ENODEV.
        tolerating(result, &operation, &[libc::EADDRNOTAVAIL, libc::ENODEV])
    }

    /// The copy of `address` at `prefix_len` on link `index`.
    async fn copy_on(
        &self,
        index: u32,
        address: &ProxyAddress,
        prefix_len: u8,
    ) -> Result<Option<AddressMessage>, NetError> {
        Ok(self
            .copies_at(address, prefix_len)
            .await?
            .into_iter()
            .find(|m| m.header.index == index))
    }
}

#[async_trait]
impl Addresses for Netlink {
    /// `ip addr show to ADDRESS/PREFIX`
    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<Holder>, NetError> {
        let mut holders: Vec<Holder> = Vec::new();
        for message in self.copies_of(address).await? {
            let index = message.header.index;
            if holders.iter().all(|h| h.index != index) {
                holders.push(Holder {
                    index,
                    as_ours: is_as_ours(&message),
                    global: is_global(&message),
                });
            }
        }
        Ok(holders)
    }

    /// `ip addr add ADDRESS/PREFIX dev INDEX scope global proto 97 [nodad]`
    async fn add_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        self.put(index, address, address.prefix_len(), Existing::Keep)
            .await
    }

    /// `ip addr replace … proto 97` where the kernel updates the protocol in place (IPv4 from
    /// Linux 6.3, IPv6 from 5.18). Elsewhere, and for an IPv4 address of host scope (no kernel
    /// changes the scope on replace), make before break through a bridge: the same address at
    /// the next shorter prefix with no prefix route, which keeps the address's local route while
    /// the copy is removed and added again as ours, then goes. The bridge, added afresh, also
    /// tells whether the kernel keeps a protocol at all: where it does not (before 5.18) a
    /// global copy is left as it is.
    ///
    /// IPv6 never takes the bridge: a link holds one copy of an IPv6 address whatever the prefix
    /// (the kernel refuses a second with `EEXIST`, so removing "the copy" would remove the only
    /// one), its scope follows from the address, and a replace that did not mark it means the
    /// kernel keeps no protocol.
    async fn adopt_address(
        &self,
        index: u32,
        address: &ProxyAddress,
    ) -> Result<Adoption, NetError> {
        let own = address.prefix_len();
        self.put(index, address, own, Existing::Replace).await?;
        let copy = self.copy_on(index, address, own).await?;
        if copy.as_ref().is_some_and(is_as_ours) {
            return Ok(Adoption::Marked);
        }
        if address.is_ipv6() {
            return Ok(Adoption::Unmarked);
        }
        let bridge = own - 1;
        self.put(index, address, bridge, Existing::Keep).await?;
        let marks_kept = self
            .copy_on(index, address, bridge)
            .await?
            .is_some_and(|m| is_marked(&m));
        if marks_kept || !copy.as_ref().is_some_and(is_global) {
            self.del(index, address, own).await?;
            self.put(index, address, own, Existing::Keep).await?;
        }
        self.del(index, address, bridge).await?;
        let marked = self
            .copy_on(index, address, own)
            .await?
            .is_some_and(|m| is_as_ours(&m));
        Ok(if marked {
            Adoption::Marked
        } else {
            Adoption::Unmarked
        })
    }

    /// `ip addr show` filtered on `proto 97`: host prefixes, and the next shorter ones of the
    /// adoption's bridge. The names of the links that
    /// hold them are asked one by one: there are one or two, where a dump of every link would
    /// cost a node of a thousand Pods' veths more than the rest of the sync.
    async fn marked_addresses(&self) -> Result<Vec<MarkedAddress>, NetError> {
        let mut names: HashMap<u32, String> = HashMap::new();
        let mut marked = Vec::new();
        for message in self.all_addresses().await? {
            let Some(ip) = ip_of(&message).filter(|_| is_marked(&message)) else {
                continue;
            };
            let Ok(address) = ip.to_string().parse::<ProxyAddress>() else {
                continue;
            };
            let bridge = match message.header.prefix_len {
                own if own == address.prefix_len() => false,
                shorter if shorter + 1 == address.prefix_len() => true,
                _ => continue,
            };
            let index = message.header.index;
            let interface = match names.get(&index) {
                Some(name) => name.clone(),
                None => {
                    let name = self
                        .link_name(index)
                        .await?
                        .unwrap_or_else(|| index.to_string());
                    names.insert(index, name.clone());
                    name
                }
            };
            marked.push(MarkedAddress {
                index,
                interface,
                address,
                bridge,
            });
        }
        Ok(marked)
    }

    /// `ip addr del ADDRESS/PREFIX dev INDEX`
    async fn delete_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        self.del(index, address, address.prefix_len()).await
    }

    /// `ip addr del ADDRESS/PREFIX-1 dev INDEX`
    async fn delete_bridge(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        self.del(index, address, address.prefix_len() - 1).await
    }
}
