//! Keeps the proxy address on its interface: observe, plan, act.

use crate::ports::AddressManager;
use crate::sidecar::desired::DesiredAddress;
use crate::sidecar::model::{Link, NetError, NetEvent};
use crate::sidecar::repair::Repair;
use crate::sidecar::report::AddressSyncError;

/// What a sync found on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    link: Option<Link>,
    /// Every link holding the address, ours included.
    holders: Vec<u32>,
}

/// One step towards the desired state, in the order they must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    CreateLink,
    SetLinkUp,
    AddAddress,
    RemoveStray { index: u32 },
}

/// Decides what to do; pure, so every case is a table row in the tests.
fn plan(observed: &Observed) -> Vec<Step> {
    let mut steps = Vec::new();
    let ours = observed.link.as_ref().map(|link| link.index);
    match &observed.link {
        // A new link starts down and without addresses.
        None => steps.extend([Step::CreateLink, Step::SetLinkUp, Step::AddAddress]),
        Some(link) => {
            if !link.up {
                steps.push(Step::SetLinkUp);
            }
            if !observed.holders.contains(&link.index) {
                steps.push(Step::AddAddress);
            }
        }
    }
    // Strays go last: if adding to ours fails, the address stays where it was rather than
    // being nowhere.
    steps.extend(
        observed
            .holders
            .iter()
            .filter(|index| Some(**index) != ours)
            .map(|&index| Step::RemoveStray { index }),
    );
    steps
}

/// Keeps one address on one interface.
#[derive(Debug)]
pub struct AddressReconciler<A> {
    net: A,
    desired: DesiredAddress,
    /// The link this process created, the only link cleanup may delete.
    created_link: Option<u32>,
    /// Our link's index as last seen, to tell our own changes from another agent's.
    our_index: Option<u32>,
    /// Whether the address was on our link when the last sync ended.
    present: bool,
}

impl<A: AddressManager> AddressReconciler<A> {
    pub fn new(net: A, desired: DesiredAddress) -> Self {
        Self {
            net,
            desired,
            created_link: None,
            our_index: None,
            present: false,
        }
    }

    /// Whether the address was on its interface when the last sync ended.
    pub fn present(&self) -> bool {
        self.present
    }

    fn error(&self, step: &'static str) -> impl FnOnce(NetError) -> AddressSyncError + '_ {
        move |cause| AddressSyncError {
            step,
            address: self.desired.address.to_string(),
            interface: self.desired.interface.to_string(),
            cause,
        }
    }

    /// Brings the node to the desired state and says what it changed. Idempotent: a second call
    /// right after a successful one changes nothing.
    pub async fn sync(&mut self) -> Result<Vec<Repair>, AddressSyncError> {
        let address = self.desired.address;
        let interface = self.desired.interface.clone();
        self.present = false;
        let observed = Observed {
            link: self
                .net
                .link_by_name(&interface)
                .await
                .map_err(self.error("look up the interface for"))?,
            holders: self
                .net
                .links_holding(&address)
                .await
                .map_err(self.error("list the interfaces holding"))?,
        };
        self.our_index = observed.link.as_ref().map(|link| link.index);
        self.present = self
            .our_index
            .is_some_and(|index| observed.holders.contains(&index));
        let mut repairs = Vec::new();
        for step in plan(&observed) {
            match step {
                Step::CreateLink => {
                    let link = self
                        .net
                        .create_dummy_link(&interface)
                        .await
                        .map_err(self.error("create the interface for"))?;
                    self.created_link = Some(link.index);
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
                        .map_err(self.error("set up the interface for"))?;
                    repairs.push(Repair::LinkSetUp {
                        interface: interface.to_string(),
                    });
                }
                Step::AddAddress => {
                    let index = self.our_index.unwrap_or_default();
                    self.net
                        .add_address(index, &address)
                        .await
                        .map_err(self.error("add"))?;
                    self.present = true;
                    repairs.push(Repair::AddressAdded {
                        address: address.to_string(),
                        interface: interface.to_string(),
                    });
                }
                Step::RemoveStray { index } => {
                    self.net
                        .delete_address(index, &address)
                        .await
                        .map_err(self.error("remove a stray copy of"))?;
                    repairs.push(Repair::StrayAddressRemoved {
                        address: address.to_string(),
                        index,
                    });
                }
            }
        }
        Ok(repairs)
    }

    /// Removes what this process added: the address, and the interface only if this process
    /// created it (never `lo`). Safe to run twice.
    pub async fn cleanup(&mut self) -> Result<(), AddressSyncError> {
        let address = self.desired.address;
        let Some(link) = self
            .net
            .link_by_name(&self.desired.interface)
            .await
            .map_err(self.error("look up the interface for"))?
        else {
            return Ok(());
        };
        self.net
            .delete_address(link.index, &address)
            .await
            .map_err(self.error("remove"))?;
        self.present = false;
        if self.created_link == Some(link.index) && !self.desired.interface.is_loopback() {
            self.net
                .delete_link(link.index)
                .await
                .map_err(self.error("delete the interface created for"))?;
            self.created_link = None;
        }
        Ok(())
    }

    /// Whether `event` may mean the address or its interface drifted. Our own changes (our
    /// address appearing on our link, our link going up) are not, so a sync does not trigger
    /// another one forever.
    pub fn is_relevant(&self, event: &NetEvent) -> bool {
        let ours = self.desired.address.ip();
        let name = self.desired.interface.as_str();
        let is_our_index = |index: &u32| self.our_index == Some(*index);
        match event {
            NetEvent::AddressRemoved { address, .. } => *address == ours,
            NetEvent::AddressAdded { index, address } => *address == ours && !is_our_index(index),
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
mod tests;
