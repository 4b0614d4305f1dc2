//! Two halves of the network from two sources: mocks of each port, or a fake with one half
//! replaced, for the reconciler that takes both halves as one value.

use async_trait::async_trait;

use crate::ports::{Addresses, Links};
use crate::sidecar::desired::{InterfaceName, ProxyAddress};
use crate::sidecar::model::{Adoption, Holder, Link, MarkedAddress, MarkedLink, NetError};

/// Addresses from `addresses`, links from `links`.
#[derive(Debug, Clone, Default)]
pub struct Split<A, L> {
    pub addresses: A,
    pub links: L,
}

#[async_trait]
impl<A: Addresses, L: Send + Sync> Addresses for Split<A, L> {
    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<Holder>, NetError> {
        self.addresses.links_holding(address).await
    }
    async fn add_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        self.addresses.add_address(index, address).await
    }
    async fn adopt_address(
        &self,
        index: u32,
        address: &ProxyAddress,
    ) -> Result<Adoption, NetError> {
        self.addresses.adopt_address(index, address).await
    }
    async fn marked_addresses(&self) -> Result<Vec<MarkedAddress>, NetError> {
        self.addresses.marked_addresses().await
    }
    async fn delete_bridge(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        self.addresses.delete_bridge(index, address).await
    }
    async fn delete_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        self.addresses.delete_address(index, address).await
    }
}

#[async_trait]
impl<A: Send + Sync, L: Links> Links for Split<A, L> {
    async fn link_by_name(&self, name: &InterfaceName) -> Result<Option<Link>, NetError> {
        self.links.link_by_name(name).await
    }
    async fn create_dummy_link(&self, name: &InterfaceName) -> Result<Link, NetError> {
        self.links.create_dummy_link(name).await
    }
    async fn set_link_up(&self, index: u32) -> Result<(), NetError> {
        self.links.set_link_up(index).await
    }
    async fn marked_links(&self) -> Result<Vec<MarkedLink>, NetError> {
        self.links.marked_links().await
    }
    async fn delete_link(&self, index: u32) -> Result<(), NetError> {
        self.links.delete_link(index).await
    }
}
