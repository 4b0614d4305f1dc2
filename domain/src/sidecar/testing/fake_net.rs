//! An in-memory network namespace for tests that assert state across several syncs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::AddressManager;
use crate::sidecar::desired::{InterfaceName, ProxyAddress};
use crate::sidecar::model::{Link, NetError};

#[derive(Debug, Default)]
pub struct State {
    pub links: BTreeMap<u32, (Link, Vec<ProxyAddress>)>,
    pub next_index: u32,
    /// When set, every request fails with this error.
    pub broken: Option<NetError>,
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
        state.links.insert(
            index,
            (
                Link {
                    index,
                    name: name.into(),
                    up,
                },
                Vec::new(),
            ),
        );
        index
    }

    pub fn addresses_of(&self, name: &str) -> Vec<ProxyAddress> {
        let state = self.0.lock().unwrap();
        state
            .links
            .values()
            .find(|(link, _)| link.name == name)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    pub fn put_address(&self, index: u32, address: ProxyAddress) {
        self.0
            .lock()
            .unwrap()
            .links
            .get_mut(&index)
            .unwrap()
            .1
            .push(address);
    }

    pub fn link(&self, name: &str) -> Option<Link> {
        let state = self.0.lock().unwrap();
        state
            .links
            .values()
            .find(|(link, _)| link.name == name)
            .map(|(link, _)| link.clone())
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
impl AddressManager for FakeNet {
    async fn link_by_name(&self, name: &InterfaceName) -> Result<Option<Link>, NetError> {
        drop(self.check()?);
        Ok(self.link(name.as_str()))
    }

    async fn create_dummy_link(&self, name: &InterfaceName) -> Result<Link, NetError> {
        drop(self.check()?);
        let index = self.add_link(name.as_str(), false);
        Ok(self.0.lock().unwrap().links[&index].0.clone())
    }

    async fn set_link_up(&self, index: u32) -> Result<(), NetError> {
        let mut state = self.check()?;
        if let Some((link, _)) = state.links.get_mut(&index) {
            link.up = true;
        }
        Ok(())
    }

    async fn delete_link(&self, index: u32) -> Result<(), NetError> {
        self.check()?.links.remove(&index);
        Ok(())
    }

    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<u32>, NetError> {
        let state = self.check()?;
        Ok(state
            .links
            .iter()
            .filter(|(_, (_, a))| a.contains(address))
            .map(|(i, _)| *i)
            .collect())
    }

    async fn add_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        let mut state = self.check()?;
        let (_, addresses) = state
            .links
            .get_mut(&index)
            .ok_or_else(|| NetError::Failed {
                operation: "add address".into(),
                message: "no such device".into(),
            })?;
        if !addresses.contains(address) {
            addresses.push(*address);
        }
        Ok(())
    }

    async fn delete_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        let mut state = self.check()?;
        if let Some((_, addresses)) = state.links.get_mut(&index) {
            addresses.retain(|a| a != address);
        }
        Ok(())
    }
}
