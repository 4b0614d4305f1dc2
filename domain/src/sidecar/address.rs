//! Keeps the proxy addresses on their interface (observe, plan, act), collects the addresses and
//! links of ours that are no longer wanted, and cleans up.

use crate::ports::AddressManager;
use crate::sidecar::desired::{DesiredAddress, ProxyAddress};
use crate::sidecar::model::{Link, MarkedAddress, NetError, NetEvent};
use crate::sidecar::repair::Repair;
use crate::sidecar::report::{AddressSyncError, Cleaned, Collected, Owned};
use crate::sidecar::stale::StaleMemory;

/// What a sync found on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    link: Option<Link>,
    /// Each desired address, and every link holding it, ours included.
    holders: Vec<(ProxyAddress, Vec<u32>)>,
}

/// One step towards the desired state, in the order they must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    CreateLink,
    SetLinkUp,
    AddAddress(ProxyAddress),
    RemoveStray { address: ProxyAddress, index: u32 },
}

/// Decides what to do; pure, so every case is a table row in the tests.
fn plan(observed: &Observed) -> Vec<Step> {
    let mut steps = Vec::new();
    let ours = observed.link.as_ref().map(|link| link.index);
    match &observed.link {
        // A new link starts down and without addresses.
        None => steps.extend([Step::CreateLink, Step::SetLinkUp]),
        Some(link) if !link.up => steps.push(Step::SetLinkUp),
        Some(_) => {}
    }
    for (address, holders) in &observed.holders {
        if !ours.is_some_and(|index| holders.contains(&index)) {
            steps.push(Step::AddAddress(*address));
        }
    }
    // Strays go last: if adding to ours fails, the address stays where it was rather than
    // being nowhere.
    for (address, holders) in &observed.holders {
        steps.extend(
            holders
                .iter()
                .filter(|index| Some(**index) != ours)
                .map(|&index| Step::RemoveStray {
                    address: *address,
                    index,
                }),
        );
    }
    steps
}

/// Whether the kernel keeps the address protocol (`IFA_PROTO`, Linux 5.18 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkSupport {
    /// Not known until this process has added an address and read it back.
    Unknown,
    Kept,
    /// Stale addresses cannot be recognised: collection leaves addresses alone.
    Dropped,
}

/// Keeps the desired addresses on one interface, and collects the addresses and links of ours
/// that are no longer wanted.
#[derive(Debug)]
pub struct AddressReconciler<A> {
    net: A,
    desired: DesiredAddress,
    /// Our link's index as last seen, to tell our own changes from another agent's.
    our_index: Option<u32>,
    /// Each desired address, and whether it was on our link when the last sync ended.
    present: Vec<(ProxyAddress, bool)>,
    /// The addresses this process added, to learn whether the kernel keeps their mark.
    added: Vec<ProxyAddress>,
    marks: MarkSupport,
    stale_addresses: StaleMemory<(String, ProxyAddress)>,
    stale_links: StaleMemory<String>,
}

impl<A: AddressManager> AddressReconciler<A> {
    pub fn new(net: A, desired: DesiredAddress) -> Self {
        let present = desired.addresses.iter().map(|a| (*a, false)).collect();
        Self {
            net,
            desired,
            our_index: None,
            present,
            added: Vec::new(),
            marks: MarkSupport::Unknown,
            stale_addresses: StaleMemory::default(),
            stale_links: StaleMemory::default(),
        }
    }

    /// Each desired address, and whether it was on its interface when the last sync ended.
    pub fn present(&self) -> &[(ProxyAddress, bool)] {
        &self.present
    }

    fn error<'a>(
        &'a self,
        step: &'static str,
        address: impl ToString + 'a,
    ) -> impl FnOnce(NetError) -> AddressSyncError + 'a {
        move |cause| AddressSyncError {
            step,
            address: address.to_string(),
            interface: self.desired.interface.to_string(),
            cause,
        }
    }

    fn set_present(&mut self, address: ProxyAddress, present: bool) {
        for (desired, is) in &mut self.present {
            if *desired == address {
                *is = present;
            }
        }
    }

    /// The indices of the links holding `address`, ours included.
    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<u32>, AddressSyncError> {
        self.net
            .links_holding(address)
            .await
            .map_err(self.error("list the interfaces holding", address))
    }

    /// Brings the node to the desired state and says what it changed. Idempotent: a second call
    /// right after a successful one changes nothing.
    pub async fn sync(&mut self) -> Result<Vec<Repair>, AddressSyncError> {
        let interface = self.desired.interface.clone();
        let all = self.desired.addresses.to_string();
        for (_, present) in &mut self.present {
            *present = false;
        }
        let link = self
            .net
            .link_by_name(&interface)
            .await
            .map_err(self.error("look up the interface for", &all))?;
        let mut holders = Vec::new();
        for address in self.desired.addresses.iter() {
            holders.push((*address, self.links_holding(address).await?));
        }
        let observed = Observed { link, holders };
        self.our_index = observed.link.as_ref().map(|link| link.index);
        for (address, holding) in &observed.holders {
            let present = self.our_index.is_some_and(|index| holding.contains(&index));
            self.set_present(*address, present);
        }
        let mut repairs = Vec::new();
        for step in plan(&observed) {
            match step {
                Step::CreateLink => {
                    let link = self
                        .net
                        .create_dummy_link(&interface)
                        .await
                        .map_err(self.error("create the interface for", &all))?;
                    self.our_index = Some(link.index);
                    repairs.push(Repair::LinkCreated {
                        interface: interface.to_string(),
                    });
                }
                Step::SetLinkUp => {
                    let index = self.our_index.unwrap_or_default();
                    self.net
                        .set_link_up(index)
                        .await
                        .map_err(self.error("set up the interface for", &all))?;
                    repairs.push(Repair::LinkSetUp {
                        interface: interface.to_string(),
                    });
                }
                Step::AddAddress(address) => {
                    let index = self.our_index.unwrap_or_default();
                    self.net
                        .add_address(index, &address)
                        .await
                        .map_err(self.error("add", address))?;
                    self.set_present(address, true);
                    if !self.added.contains(&address) {
                        self.added.push(address);
                    }
                    repairs.push(Repair::AddressAdded {
                        address: address.to_string(),
                        interface: interface.to_string(),
                    });
                }
                Step::RemoveStray { address, index } => {
                    self.net
                        .delete_address(index, &address)
                        .await
                        .map_err(self.error("remove a stray copy of", address))?;
                    repairs.push(Repair::StrayAddressRemoved {
                        address: address.to_string(),
                        index,
                    });
                }
            }
        }
        Ok(repairs)
    }

    /// Learns, once, whether the kernel keeps our mark: an address this process added must come
    /// back marked. Says so in one log line when it does not.
    fn learn_mark_support(&mut self, marked: &[MarkedAddress]) {
        if self.marks != MarkSupport::Unknown {
            return;
        }
        let Some(added) = self.added.first() else {
            return;
        };
        if marked.iter().any(|m| m.address == *added) {
            self.marks = MarkSupport::Kept;
        } else {
            self.marks = MarkSupport::Dropped;
            tracing::warn!(
                "this kernel does not keep the address protocol (IFA_PROTO, Linux 5.18 and later): \
                 addresses of earlier runs cannot be recognised as ours here, so only the desired \
                 addresses and links with our alias are looked after"
            );
        }
    }

    /// Removes what carries our mark but is not wanted: addresses (on any link), then links with
    /// our alias that are not the interface and held no address when the pass began. An entry
    /// that comes back after removal has a living owner and is left alone (see [`StaleMemory`]).
    /// Nothing unmarked is touched.
    pub async fn collect_stale(&mut self) -> Result<Collected, AddressSyncError> {
        let all = self.desired.addresses.to_string();
        let marked = self
            .net
            .marked_addresses()
            .await
            .map_err(self.error("list the marked addresses beside", &all))?;
        let links = self
            .net
            .marked_links()
            .await
            .map_err(self.error("list the marked links beside", &all))?;
        self.learn_mark_support(&marked);
        let mut collected = Collected::default();
        let stale: Vec<(String, ProxyAddress)> = marked
            .iter()
            .filter(|m| !self.desired.addresses.contains(&m.address))
            .map(|m| (m.interface.clone(), m.address))
            .collect();
        let verdict = self.stale_addresses.pass(&stale);
        for (interface, address) in verdict.yielded {
            collected.yielded.push(Owned::Address {
                address: address.to_string(),
                interface,
            });
        }
        for (interface, address) in verdict.remove {
            let Some(found) = marked
                .iter()
                .find(|m| m.interface == interface && m.address == address)
            else {
                continue;
            };
            self.net
                .delete_address(found.index, &address)
                .await
                .map_err(self.error("remove the stale address", address))?;
            self.stale_addresses.removed((interface.clone(), address));
            collected.removed.push(Owned::Address {
                address: address.to_string(),
                interface,
            });
        }
        let empty: Vec<String> = links
            .iter()
            .filter(|m| m.link.name != self.desired.interface.as_str() && !m.holds_addresses)
            .map(|m| m.link.name.clone())
            .collect();
        let verdict = self.stale_links.pass(&empty);
        collected.yielded.extend(
            verdict
                .yielded
                .into_iter()
                .map(|interface| Owned::Link { interface }),
        );
        for interface in verdict.remove {
            let Some(found) = links.iter().find(|m| m.link.name == interface) else {
                continue;
            };
            self.net
                .delete_link(found.link.index)
                .await
                .map_err(self.error("delete the stale interface beside", &all))?;
            self.stale_links.removed(interface.clone());
            collected.removed.push(Owned::Link { interface });
        }
        Ok(collected)
    }

    /// Removes the desired addresses from the interface, every other address with our mark, and
    /// then every link with our alias that holds no address any more (never a link without our
    /// alias, so never `lo`). Whichever process added them. Safe to run twice.
    pub async fn cleanup(&mut self) -> Result<Vec<Cleaned>, AddressSyncError> {
        let all = self.desired.addresses.to_string();
        let mut cleaned = Vec::new();
        let link = self
            .net
            .link_by_name(&self.desired.interface)
            .await
            .map_err(self.error("look up the interface for", &all))?;
        if let Some(link) = &link {
            for address in self.desired.addresses.iter() {
                if !self.links_holding(address).await?.contains(&link.index) {
                    continue;
                }
                self.net
                    .delete_address(link.index, address)
                    .await
                    .map_err(self.error("remove", address))?;
                cleaned.push(Cleaned {
                    owned: Owned::Address {
                        address: address.to_string(),
                        interface: link.name.clone(),
                    },
                    why: "--ip-address names it".into(),
                });
            }
        }
        for (_, present) in &mut self.present {
            *present = false;
        }
        let marked = self
            .net
            .marked_addresses()
            .await
            .map_err(self.error("list the marked addresses beside", &all))?;
        for m in marked {
            self.net
                .delete_address(m.index, &m.address)
                .await
                .map_err(self.error("remove the marked address", m.address))?;
            let owned = Owned::Address {
                address: m.address.to_string(),
                interface: m.interface,
            };
            cleaned.push(Cleaned {
                why: owned.mark(),
                owned,
            });
        }
        let links = self
            .net
            .marked_links()
            .await
            .map_err(self.error("list the marked links beside", &all))?;
        for m in links.into_iter().filter(|m| !m.holds_addresses) {
            self.net
                .delete_link(m.link.index)
                .await
                .map_err(self.error("delete the interface created for", &all))?;
            let owned = Owned::Link {
                interface: m.link.name,
            };
            cleaned.push(Cleaned {
                why: format!("{} and it holds no address", owned.mark()),
                owned,
            });
        }
        Ok(cleaned)
    }

    /// Whether `event` may mean the address or its interface drifted. Our own changes (our
    /// address appearing on our link, our link going up) are not, so a sync does not trigger
    /// another one forever.
    pub fn is_relevant(&self, event: &NetEvent) -> bool {
        let ours = |address: &std::net::IpAddr| self.desired.addresses.contains_ip(*address);
        let name = self.desired.interface.as_str();
        let is_our_index = |index: &u32| self.our_index == Some(*index);
        match event {
            NetEvent::AddressRemoved { address, .. } => ours(address),
            NetEvent::AddressAdded { index, address } => ours(address) && !is_our_index(index),
            NetEvent::LinkChanged {
                index,
                name: changed,
                up,
            } => {
                (changed == name && (!up || !is_our_index(index)))
                    || (is_our_index(index) && changed != name)
            }
            NetEvent::LinkRemoved {
                index,
                name: removed,
            } => removed == name || is_our_index(index),
            NetEvent::EventsLost => true,
            NetEvent::RulesChanged => false,
        }
    }
}

#[cfg(test)]
mod link_removal_tests;
#[cfg(test)]
mod stale_on_several_links_tests;
#[cfg(test)]
mod tests;
