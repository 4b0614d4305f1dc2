//! Links: look up, create (dummy), set up, delete. Like `ip link show|add|set|del`.

use domain::sidecar::desired::InterfaceName;
use domain::sidecar::model::{Link, NetError};
use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{LinkDummy, LinkUnspec};

use super::error::{errno, tolerating, translate};
use super::Netlink;

pub(super) fn link_of(message: &LinkMessage) -> Link {
    let name = message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default();
    Link {
        index: message.header.index,
        name,
        up: message.header.flags.contains(LinkFlags::Up),
    }
}

impl Netlink {
    /// `ip link show NAME`
    pub(super) async fn get_link(&self, name: &InterfaceName) -> Result<Option<Link>, NetError> {
        let mut request = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match request.try_next().await {
            Ok(message) => Ok(message.as_ref().map(link_of)),
            Err(error) if errno(&error) == Some(libc::ENODEV) => Ok(None),
            Err(error) => Err(translate(&format!("ip link show {name}"), &error)),
        }
    }

    /// `ip link add NAME type dummy`
    pub(super) async fn add_dummy_link(&self, name: &InterfaceName) -> Result<Link, NetError> {
        let operation = format!("ip link add {name} type dummy");
        let result = self
            .handle
            .link()
            .add(LinkDummy::new(name.as_str()).build())
            .execute()
            .await;
        match result {
            // The kernel answers EOPNOTSUPP ("Unknown device type") without CONFIG_DUMMY.
            Err(error) if errno(&error) == Some(libc::EOPNOTSUPP) => {
                return Err(NetError::LinkTypeUnsupported {
                    kind: "dummy".into(),
                    name: name.to_string(),
                })
            }
            other => tolerating(other, &operation, &[libc::EEXIST])?,
        }
        self.get_link(name).await?.ok_or_else(|| NetError::Failed {
            operation,
            message: "the new interface vanished at once".into(),
        })
    }

    /// `ip link set dev INDEX up`
    pub(super) async fn link_up(&self, index: u32) -> Result<(), NetError> {
        let result = self
            .handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await;
        tolerating(result, &format!("ip link set {index} up"), &[])
    }

    /// `ip link del INDEX`
    pub(super) async fn del_link(&self, index: u32) -> Result<(), NetError> {
        let result = self.handle.link().del(index).execute().await;
        tolerating(result, &format!("ip link del {index}"), &[libc::ENODEV])
    }
}
