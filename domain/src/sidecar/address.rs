//! Keeps the proxy addresses on their interface (observe, plan, act), adopts the unmarked copies
//! the Go original left, removes the earlier addresses the operator names, collects the addresses
//! and links of ours that are no longer wanted, and cleans up.

use crate::ports::Network;
use crate::sidecar::desired::{DesiredAddress, ProxyAddress};
use crate::sidecar::model::{Adoption, Holder, Link, MarkedAddress, NetError, NetEvent};
use crate::sidecar::repair::Repair;
use crate::sidecar::report::{AddressSyncError, Cleaned, Collected, Owned};
use crate::sidecar::stale::StaleMemory;

/// What a sync found on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    link: Option<Link>,
    /// Each desired address, and every link holding it, ours included.
    holders: Vec<(ProxyAddress, Vec<Holder>)>,
    /// What this process learnt of the kernel's marks so far.
    marks: MarkSupport,
    /// Each address `--remove-address` names, and every link holding it.
    earlier: Vec<(ProxyAddress, Vec<u32>)>,
}

/// One step towards the desired state, in the order they must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    CreateLink,
    SetLinkUp,
    AddAddress(ProxyAddress),
    /// Our link holds the address, but not as we add it (the Go original's copy): mark it and
    /// give it global scope, in place. `global`: the copy has global scope already.
    AdoptAddress {
        address: ProxyAddress,
        global: bool,
    },
    RemoveStray {
        address: ProxyAddress,
        index: u32,
    },
    RemoveEarlier {
        address: ProxyAddress,
        index: u32,
    },
}

/// Whether our link's copy is to be adopted. Where the kernel keeps no mark, a copy of global
/// scope is as ours as a copy can be there: what the one-shot before this process added, or the
/// Go original's, which nothing could tell apart.
fn needs_adoption(held: &Holder, marks: MarkSupport) -> bool {
    let as_ours_as_can_be = marks == MarkSupport::Dropped && held.global;
    !held.as_ours && !as_ours_as_can_be
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
        match holders.iter().find(|h| Some(h.index) == ours) {
            None => steps.push(Step::AddAddress(*address)),
            Some(held) if needs_adoption(held, observed.marks) => steps.push(Step::AdoptAddress {
                address: *address,
                global: held.global,
            }),
            Some(_) => {}
        }
    }
    // Strays and earlier addresses go last: if adding to ours fails, the address stays where it
    // was rather than being nowhere.
    for (address, holders) in &observed.holders {
        steps.extend(
            holders
                .iter()
                .filter(|held| Some(held.index) != ours)
                .map(|held| Step::RemoveStray {
                    address: *address,
                    index: held.index,
                }),
        );
    }
    for (address, holders) in &observed.earlier {
        steps.extend(holders.iter().map(|&index| Step::RemoveEarlier {
            address: *address,
            index,
        }));
    }
    steps
}

/// Whether the kernel keeps the address protocol (`IFA_PROTO`, Linux 5.18 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkSupport {
    /// Not known until this process has added or adopted an address and read it back.
    Unknown,
    Kept,
    /// Stale addresses cannot be recognised: collection leaves addresses alone, and an unmarked
    /// copy of global scope on our link counts as ours.
    Dropped,
}

/// Keeps the desired addresses on one interface, and collects the addresses and links of ours
/// that are no longer wanted.
#[derive(Debug)]
pub struct AddressReconciler<N> {
    net: N,
    desired: DesiredAddress,
    /// Addresses an earlier configuration (or the Go original) used, removed wherever they are.
    earlier: Vec<ProxyAddress>,
    /// Our link's index as last seen, to tell our own changes from another agent's.
    our_index: Option<u32>,
    /// Each desired address, and whether it was on our link when the last sync ended.
    present: Vec<(ProxyAddress, bool)>,
    /// The first address this process added, to learn whether the kernel keeps its mark.
    first_added: Option<ProxyAddress>,
    marks: MarkSupport,
    stale: StaleMemory<Owned>,
}

/// How a stale entry goes.
#[derive(Debug, Clone, Copy)]
enum Removal {
    Address {
        index: u32,
        address: ProxyAddress,
        /// The adoption's bridge of `address`, rather than the address at its own prefix.
        bridge: bool,
    },
    Link {
        index: u32,
    },
}

impl<N: Network> AddressReconciler<N> {
    pub fn new(net: N, desired: DesiredAddress) -> Self {
        let present = desired.addresses.iter().map(|a| (*a, false)).collect();
        Self {
            net,
            desired,
            earlier: Vec::new(),
            our_index: None,
            present,
            first_added: None,
            marks: MarkSupport::Unknown,
            stale: StaleMemory::default(),
        }
    }

    /// Also removes `earlier` (`--remove-address`) from every link at each sync, whoever added
    /// it. The caller has checked that none of them is desired.
    pub fn removing(mut self, earlier: Vec<ProxyAddress>) -> Self {
        self.earlier = earlier;
        self
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

    /// The links holding `address`, ours included.
    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<Holder>, AddressSyncError> {
        self.net
            .links_holding(address)
            .await
            .map_err(self.error("list the interfaces holding", address))
    }

    /// Brings the node to the desired state and says what it changed. Idempotent: a second call
    /// right after a successful one changes nothing.
    pub async fn sync(&mut self) -> Result<Vec<Repair>, AddressSyncError> {
        let observed = self.observe().await?;
        let mut repairs = Vec::new();
        for step in plan(&observed) {
            repairs.extend(self.apply(step).await?);
        }
        Ok(repairs)
    }

    /// Reads the interface and every link holding a desired or an earlier address, and notes
    /// which desired addresses are on the interface.
    async fn observe(&mut self) -> Result<Observed, AddressSyncError> {
        let all = self.desired.addresses.to_string();
        // Unknown until read: a sync that fails to read leaves them absent.
        for (_, present) in &mut self.present {
            *present = false;
        }
        let link = self
            .net
            .link_by_name(&self.desired.interface)
            .await
            .map_err(self.error("look up the interface for", &all))?;
        let mut holders = Vec::new();
        for address in self.desired.addresses.iter() {
            holders.push((*address, self.links_holding(address).await?));
        }
        let mut earlier = Vec::new();
        for address in &self.earlier {
            let holding = self.links_holding(address).await?;
            earlier.push((*address, holding.iter().map(|h| h.index).collect()));
        }
        self.our_index = link.as_ref().map(|link| link.index);
        for (address, holding) in &holders {
            let present = holding.iter().any(|h| Some(h.index) == self.our_index);
            self.set_present(*address, present);
        }
        Ok(Observed {
            link,
            holders,
            marks: self.marks,
            earlier,
        })
    }

    /// Takes one step; says what it changed, if anything.
    async fn apply(&mut self, step: Step) -> Result<Option<Repair>, AddressSyncError> {
        let interface = self.desired.interface.to_string();
        let all = self.desired.addresses.to_string();
        let index = self.our_index.unwrap_or_default();
        let repair = match step {
            Step::CreateLink => {
                let link = self
                    .net
                    .create_dummy_link(&self.desired.interface)
                    .await
                    .map_err(self.error("create the interface for", &all))?;
                self.our_index = Some(link.index);
                Repair::LinkCreated { interface }
            }
            Step::SetLinkUp => {
                self.net
                    .set_link_up(index)
                    .await
                    .map_err(self.error("set up the interface for", &all))?;
                Repair::LinkSetUp { interface }
            }
            Step::AddAddress(address) => {
                self.net
                    .add_address(index, &address)
                    .await
                    .map_err(self.error("add", address))?;
                self.set_present(address, true);
                self.first_added.get_or_insert(address);
                Repair::AddressAdded {
                    address: address.to_string(),
                    interface,
                }
            }
            Step::AdoptAddress { address, global } => return self.adopt(address, global).await,
            Step::RemoveStray { address, index } => {
                self.remove(index, address, "remove a stray copy of")
                    .await?;
                Repair::StrayAddressRemoved {
                    address: address.to_string(),
                    index,
                }
            }
            Step::RemoveEarlier { address, index } => {
                self.remove(index, address, "remove the earlier address")
                    .await?;
                Repair::EarlierAddressRemoved {
                    address: address.to_string(),
                    index,
                }
            }
        };
        Ok(Some(repair))
    }

    /// Marks our link's copy of `address` and gives it global scope. On a kernel that keeps no
    /// mark, a copy that had global scope already is unchanged: nothing to report.
    async fn adopt(
        &mut self,
        address: ProxyAddress,
        global: bool,
    ) -> Result<Option<Repair>, AddressSyncError> {
        let index = self.our_index.unwrap_or_default();
        let adoption = self
            .net
            .adopt_address(index, &address)
            .await
            .map_err(self.error("adopt", address))?;
        let marked = adoption == Adoption::Marked;
        if !marked {
            self.marks_dropped();
            if global {
                return Ok(None);
            }
        }
        Ok(Some(Repair::AddressAdopted {
            address: address.to_string(),
            interface: self.desired.interface.to_string(),
            marked,
        }))
    }

    async fn remove(
        &self,
        index: u32,
        address: ProxyAddress,
        what: &'static str,
    ) -> Result<(), AddressSyncError> {
        self.net
            .delete_address(index, &address)
            .await
            .map_err(self.error(what, address))
    }

    /// Learns, once, whether the kernel keeps our mark: an address this process added must come
    /// back marked.
    fn learn_mark_support(&mut self, marked: &[MarkedAddress]) {
        if self.marks != MarkSupport::Unknown {
            return;
        }
        let Some(added) = self.first_added else {
            return;
        };
        // Where marks are kept the added address is among them; where not, nothing is marked.
        if marked.iter().any(|m| m.address == added) {
            self.marks = MarkSupport::Kept;
        } else {
            self.marks_dropped();
        }
    }

    /// The kernel keeps no mark: says so, once per process. Informational: nothing on the node
    /// can change it, and the sidecar works on such a kernel (docs/architecture.md#ownership).
    fn marks_dropped(&mut self) {
        if self.marks == MarkSupport::Dropped {
            return;
        }
        self.marks = MarkSupport::Dropped;
        tracing::info!(
            "this kernel does not keep the address protocol (IFA_PROTO, Linux 5.18 and later): \
             addresses of earlier runs cannot be recognised as ours here, so only the desired \
             addresses (and --remove-address) and links with our alias are looked after"
        );
    }

    /// Removes a marked address: at its own prefix, or the adoption's bridge of it.
    async fn delete_marked(
        &self,
        index: u32,
        address: ProxyAddress,
        bridge: bool,
        what: &'static str,
    ) -> Result<(), AddressSyncError> {
        let deleted = match bridge {
            true => self.net.delete_bridge(index, &address).await,
            false => self.net.delete_address(index, &address).await,
        };
        deleted.map_err(self.error(what, address))
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
        // A link that holds a stale address is not empty in this pass: it goes in the next one.
        // A bridge is never wanted: this process's own adoptions remove theirs before they end.
        let addresses = marked
            .into_iter()
            .filter(|m| m.bridge || !self.desired.addresses.contains(&m.address))
            .map(|m| {
                let removal = Removal::Address {
                    index: m.index,
                    address: m.address,
                    bridge: m.bridge,
                };
                let owned = Owned::Address {
                    address: m.shown(),
                    interface: m.interface,
                };
                (owned, removal)
            });
        let links = links
            .into_iter()
            .filter(|m| m.link.name != self.desired.interface.as_str() && !m.holds_addresses)
            .map(|m| {
                let removal = Removal::Link {
                    index: m.link.index,
                };
                let owned = Owned::Link {
                    interface: m.link.name,
                };
                (owned, removal)
            });
        let stale: Vec<(Owned, Removal)> = addresses.chain(links).collect();
        let keys: Vec<Owned> = stale.iter().map(|(owned, _)| owned.clone()).collect();
        let verdict = self.stale.pass(&keys);
        let mut collected = Collected {
            removed: Vec::new(),
            yielded: verdict.yielded,
        };
        for owned in verdict.remove {
            let Some((_, removal)) = stale.iter().find(|(o, _)| *o == owned) else {
                continue;
            };
            match *removal {
                Removal::Address {
                    index,
                    address,
                    bridge,
                } => {
                    self.delete_marked(index, address, bridge, "remove the stale address")
                        .await?
                }
                Removal::Link { index } => self
                    .net
                    .delete_link(index)
                    .await
                    .map_err(self.error("delete the stale interface beside", &all))?,
            }
            self.stale.removed(owned.clone());
            collected.removed.push(owned);
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
                if !self
                    .links_holding(address)
                    .await?
                    .iter()
                    .any(|h| h.index == link.index)
                {
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
            self.delete_marked(m.index, m.address, m.bridge, "remove the marked address")
                .await?;
            let owned = Owned::Address {
                address: m.shown(),
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
