//! Links: look up, create (dummy), set up, list ours, delete. Like `ip link show|add|set|del`.

use async_trait::async_trait;
use domain::ports::Links;
use domain::sidecar::desired::InterfaceName;
use domain::sidecar::model::{Link, MarkedLink, NetError, LINK_ALIAS};
use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{LinkDummy, LinkUnspec};

use super::address::is_kernel_link_local;
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
    async fn get_link(&self, name: &InterfaceName) -> Result<Option<Link>, NetError> {
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

    /// `ip link show INDEX`: the name, for a log line; `None` when it is gone.
    pub(super) async fn link_name(&self, index: u32) -> Result<Option<String>, NetError> {
        let mut request = self.handle.link().get().match_index(index).execute();
        match request.try_next().await {
            Ok(message) => Ok(message.as_ref().map(|message| link_of(message).name)),
            Err(error) if errno(&error) == Some(libc::ENODEV) => Ok(None),
            Err(error) => Err(translate(&format!("ip link show {index}"), &error)),
        }
    }

    /// `ip link show` filtered on `alias apiserver-proxy`.
    async fn aliased_links(&self) -> Result<Vec<Link>, NetError> {
        Ok(self
            .link_messages()
            .await?
            .iter()
            .filter(|message| {
                message.attributes.iter().any(
                    |attribute| matches!(attribute, LinkAttribute::IfAlias(alias) if alias == LINK_ALIAS),
                )
            })
            .map(link_of)
            .collect())
    }

    /// Every link without its statistics (`RTEXT_FILTER_SKIP_STATS`): this runs at every sync,
    /// and the counters are most of each message. With 2,000 links, it halved the sync's time
    /// (docs/architecture.md#the-cost-of-a-sync).
    async fn link_messages(&self) -> Result<Vec<LinkMessage>, NetError> {
        self.handle
            .link()
            .get()
            .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
            .execute()
            .try_collect()
            .await
            .map_err(|e| translate("ip link show", &e))
    }

    /// `ip link set dev INDEX alias apiserver-proxy`: the mark that tells a link this sidecar
    /// created from any other. Set after creation: the kernel applies `IFLA_IFALIAS` in its
    /// set-link path.
    async fn set_alias(&self, index: u32) -> Result<(), NetError> {
        let result = self
            .handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .append_extra_attribute(LinkAttribute::IfAlias(LINK_ALIAS.into()))
                    .build(),
            )
            .execute()
            .await;
        tolerating(
            result,
            &format!("ip link set {index} alias {LINK_ALIAS}"),
            &[],
        )
    }
}

#[async_trait]
impl Links for Netlink {
    async fn link_by_name(&self, name: &InterfaceName) -> Result<Option<Link>, NetError> {
        self.get_link(name).await
    }

    /// `ip link add NAME type dummy`, then `ip link set NAME alias apiserver-proxy`
    async fn create_dummy_link(&self, name: &InterfaceName) -> Result<Link, NetError> {
        let operation = format!("ip link add {name} type dummy");
        let result = self
            .handle
            .link()
            .add(LinkDummy::new(name.as_str()).build())
            .execute()
            .await;
        let mut created = true;
        match result {
            // The kernel answers EOPNOTSUPP ("Unknown device type") without CONFIG_DUMMY.
            Err(error) if errno(&error) == Some(libc::EOPNOTSUPP) => {
                return Err(NetError::LinkTypeUnsupported {
                    kind: "dummy".into(),
                    name: name.to_string(),
                })
            }
            // Another process created it a moment ago: it is not ours to mark.
            Err(error) if errno(&error) == Some(libc::EEXIST) => created = false,
            other => tolerating(other, &operation, &[])?,
        }
        let link = self.get_link(name).await?.ok_or_else(|| NetError::Failed {
            operation,
            message: "the new interface vanished at once".into(),
        })?;
        if created {
            self.set_alias(link.index).await?;
        }
        Ok(link)
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

    /// `ip link set dev INDEX up`
    async fn set_link_up(&self, index: u32) -> Result<(), NetError> {
        let result = self
            .handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await;
        tolerating(result, &format!("ip link set {index} up"), &[])
    }

    /// `ip link del INDEX`
    async fn delete_link(&self, index: u32) -> Result<(), NetError> {
        let result = self.handle.link().del(index).execute().await;
        tolerating(result, &format!("ip link del {index}"), &[libc::ENODEV])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blackbox_tests::netns::{in_netns, sh};

    /// This kernel has no dummy type, so the alias step of `add_dummy_link` is tried on a veth:
    /// the same request on any link.
    #[test]
    fn set_alias_marks_a_link_as_ip_link_show_prints_it() {
        in_netns(
            "set_alias_marks_a_link_as_ip_link_show_prints_it",
            || async {
                sh("ip link add v0 type veth peer name v1");
                let net = Netlink::connect().expect("a netlink socket");
                let name: InterfaceName = "v0".parse().expect("a name");
                let link = net.get_link(&name).await.unwrap().expect("v0 exists");
                net.set_alias(link.index).await.unwrap();
                let shown = sh("ip link show dev v0");
                assert!(shown.contains("alias apiserver-proxy"), "{shown}");
                let aliased = net.aliased_links().await.unwrap();
                assert_eq!(
                    aliased.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
                    ["v0"]
                );
            },
        );
    }
}
