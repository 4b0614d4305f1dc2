//! An in-memory network namespace for tests that assert state across several syncs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::{Addresses, Links};
use crate::sidecar::desired::{InterfaceName, ProxyAddress};
use crate::sidecar::model::{Adoption, Holder, Link, MarkedAddress, MarkedLink, NetError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLink {
    pub link: Link,
    /// Whether its alias is ours.
    pub marked: bool,
    pub addresses: Vec<FakeAddress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeAddress {
    pub address: ProxyAddress,
    /// Carries our address protocol.
    pub marked: bool,
    pub global: bool,
    /// At the next shorter prefix: an adoption's bridge.
    pub bridge: bool,
}

impl FakeAddress {
    fn of(address: ProxyAddress, marked: bool) -> Self {
        Self {
            address,
            marked,
            global: true,
            bridge: false,
        }
    }

    /// The copy at the address's own prefix.
    fn is(&self, address: &ProxyAddress) -> bool {
        self.address == *address && !self.bridge
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub links: BTreeMap<u32, FakeLink>,
    pub next_index: u32,
    /// When set, every request fails with this error.
    pub broken: Option<NetError>,
    /// A kernel older than 5.18: addresses lose their protocol.
    pub drops_address_protocol: bool,
}

/// Cloning shares the state, so a test keeps a handle while the reconciler owns another.
#[derive(Debug, Clone, Default)]
pub struct FakeNet(pub Arc<Mutex<State>>);

impl FakeNet {
    /// A namespace with `lo` (index 1, up) and nothing on it.
    pub fn with_lo() -> Self {
        let net = Self::default();
        net.add_link("lo", true);
        net
    }

    pub fn add_link(&self, name: &str, up: bool) -> u32 {
        let mut state = self.0.lock().unwrap();
        state.next_index += 1;
        let index = state.next_index;
        let link = Link {
            index,
            name: name.into(),
            up,
        };
        state.links.insert(
            index,
            FakeLink {
                link,
                marked: false,
                addresses: Vec::new(),
            },
        );
        index
    }

    /// A link as another sidecar would have created it: with our alias.
    pub fn add_marked_link(&self, name: &str) -> u32 {
        let index = self.add_link(name, true);
        self.0.lock().unwrap().links.get_mut(&index).unwrap().marked = true;
        index
    }

    pub fn addresses_of(&self, name: &str) -> Vec<ProxyAddress> {
        self.find(name)
            .map(|l| l.addresses.iter().map(|a| a.address).collect())
            .unwrap_or_default()
    }

    /// Puts an address without our mark, as a person, another program or the Go original would.
    pub fn put_address(&self, index: u32, address: ProxyAddress) {
        self.put(index, address, false);
    }

    /// Puts an address with our mark, as another sidecar would.
    pub fn put_marked_address(&self, index: u32, address: ProxyAddress) {
        self.put(index, address, true);
    }

    /// Puts an address with host scope and without our mark, as the Go original's older
    /// versions did.
    pub fn put_host_scope_address(&self, index: u32, address: ProxyAddress) {
        self.put_as(
            index,
            FakeAddress {
                global: false,
                ..FakeAddress::of(address, false)
            },
        );
    }

    /// Puts the bridge of an adoption a process did not finish: marked, at the next shorter
    /// prefix.
    pub fn put_marked_bridge(&self, index: u32, address: ProxyAddress) {
        self.put_as(
            index,
            FakeAddress {
                bridge: true,
                ..FakeAddress::of(address, true)
            },
        );
    }

    fn put(&self, index: u32, address: ProxyAddress, marked: bool) {
        self.put_as(index, FakeAddress::of(address, marked));
    }

    fn put_as(&self, index: u32, address: FakeAddress) {
        let mut state = self.0.lock().unwrap();
        state.links.get_mut(&index).unwrap().addresses.push(address);
    }

    /// The copy of `address` (at its own prefix) on the link named `name`.
    pub fn copy_of(&self, name: &str, address: ProxyAddress) -> Option<FakeAddress> {
        self.find(name)
            .and_then(|l| l.addresses.into_iter().find(|a| a.is(&address)))
    }

    /// Whether the copy of `address` on the link named `name` carries our mark.
    pub fn is_marked(&self, name: &str, address: ProxyAddress) -> bool {
        self.copy_of(name, address).is_some_and(|a| a.marked)
    }

    pub fn remove_address(&self, name: &str, address: ProxyAddress) {
        let mut state = self.0.lock().unwrap();
        for link in state.links.values_mut() {
            if link.link.name == name {
                link.addresses.retain(|a| a.address != address);
            }
        }
    }

    pub fn link(&self, name: &str) -> Option<Link> {
        self.find(name).map(|l| l.link)
    }

    pub fn find(&self, name: &str) -> Option<FakeLink> {
        let state = self.0.lock().unwrap();
        state.links.values().find(|l| l.link.name == name).cloned()
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, State>, NetError> {
        let state = self.0.lock().unwrap();
        match &state.broken {
            Some(error) => Err(error.clone()),
            None => Ok(state),
        }
    }
}

#[async_trait]
impl Links for FakeNet {
    async fn link_by_name(&self, name: &InterfaceName) -> Result<Option<Link>, NetError> {
        drop(self.check()?);
        Ok(self.link(name.as_str()))
    }

    async fn create_dummy_link(&self, name: &InterfaceName) -> Result<Link, NetError> {
        drop(self.check()?);
        let index = self.add_link(name.as_str(), false);
        let mut state = self.0.lock().unwrap();
        let link = state.links.get_mut(&index).unwrap();
        link.marked = true;
        Ok(link.link.clone())
    }

    async fn set_link_up(&self, index: u32) -> Result<(), NetError> {
        let mut state = self.check()?;
        if let Some(link) = state.links.get_mut(&index) {
            link.link.up = true;
        }
        Ok(())
    }

    async fn marked_links(&self) -> Result<Vec<MarkedLink>, NetError> {
        let state = self.check()?;
        Ok(state
            .links
            .values()
            .filter(|l| l.marked)
            .map(|l| MarkedLink {
                link: l.link.clone(),
                holds_addresses: !l.addresses.is_empty(),
            })
            .collect())
    }

    async fn delete_link(&self, index: u32) -> Result<(), NetError> {
        self.check()?.links.remove(&index);
        Ok(())
    }
}

#[async_trait]
impl Addresses for FakeNet {
    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<Holder>, NetError> {
        let state = self.check()?;
        Ok(state
            .links
            .iter()
            .filter_map(|(index, l)| {
                let copy = l.addresses.iter().find(|a| a.is(address))?;
                Some(Holder {
                    index: *index,
                    as_ours: copy.marked && copy.global,
                    global: copy.global,
                })
            })
            .collect())
    }

    async fn add_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        let mut state = self.check()?;
        let marked = !state.drops_address_protocol;
        let link = state
            .links
            .get_mut(&index)
            .ok_or_else(|| NetError::Failed {
                operation: "add address".into(),
                message: "no such device".into(),
            })?;
        if !link.addresses.iter().any(|a| a.is(address)) {
            link.addresses.push(FakeAddress::of(*address, marked));
        }
        Ok(())
    }

    async fn adopt_address(
        &self,
        index: u32,
        address: &ProxyAddress,
    ) -> Result<Adoption, NetError> {
        let mut state = self.check()?;
        let marked = !state.drops_address_protocol;
        let copy = state
            .links
            .get_mut(&index)
            .and_then(|l| l.addresses.iter_mut().find(|a| a.is(address)));
        match copy {
            Some(copy) => {
                *copy = FakeAddress::of(*address, marked);
                Ok(if marked {
                    Adoption::Marked
                } else {
                    Adoption::Unmarked
                })
            }
            None => Err(NetError::Failed {
                operation: "adopt address".into(),
                message: "no such address".into(),
            }),
        }
    }

    async fn marked_addresses(&self) -> Result<Vec<MarkedAddress>, NetError> {
        let state = self.check()?;
        Ok(state
            .links
            .values()
            .flat_map(|l| {
                l.addresses
                    .iter()
                    .filter(|a| a.marked)
                    .map(|a| MarkedAddress {
                        index: l.link.index,
                        interface: l.link.name.clone(),
                        address: a.address,
                        bridge: a.bridge,
                    })
            })
            .collect())
    }

    async fn delete_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        let mut state = self.check()?;
        if let Some(link) = state.links.get_mut(&index) {
            link.addresses.retain(|a| !a.is(address));
        }
        Ok(())
    }

    async fn delete_bridge(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        let mut state = self.check()?;
        if let Some(link) = state.links.get_mut(&index) {
            link.addresses
                .retain(|a| !(a.bridge && a.address == *address));
        }
        Ok(())
    }
}
