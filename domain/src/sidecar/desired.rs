//! What the sidecar keeps in place, derived from its flags and validated once.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The longest interface name Linux accepts (`IFNAMSIZ` less the terminating NUL).
const MAX_INTERFACE_NAME_BYTES: usize = 15;

/// Why a flag value cannot describe the sidecar's desired state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredStateError {
    #[error("{input:?} is not an IP address: expected a plain IPv4 or IPv6 address such as 10.96.0.2 or fd00::2 (no prefix length, no zone)")]
    NotAnAddress { input: String },
    #[error("{input:?} is not a usable address: {reason}")]
    UnusableAddress { input: String, reason: &'static str },
    #[error("{input:?} is not one address or two: expected 10.96.0.2, fd00::2, or one of each family such as 10.96.0.2,fd00::2 ({reason})")]
    BadAddressList { input: String, reason: &'static str },
    #[error("{input:?} is also an --ip-address: expected only addresses no longer wanted")]
    RemovingWanted { input: String },
    #[error("{input:?} is not an interface name: expected 1 to 15 bytes without '/', ':', or white space")]
    BadInterfaceName { input: String },
}

/// A host address the proxy listens on: always a single address (/32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyAddress(IpAddr);

impl ProxyAddress {
    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// /32 for IPv4, /128 for IPv6: the address is the proxy's alone, never a subnet.
    pub fn prefix_len(&self) -> u8 {
        match self.0 {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    pub fn is_ipv6(&self) -> bool {
        self.0.is_ipv6()
    }
}

impl FromStr for ProxyAddress {
    type Err = DesiredStateError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        // `IpAddr::from_str` already refuses zones (`fe80::1%eth0`) and prefixes (`10.0.0.1/32`).
        let ip = IpAddr::from_str(input).map_err(|_| DesiredStateError::NotAnAddress {
            input: input.to_owned(),
        })?;
        let unusable = |reason| DesiredStateError::UnusableAddress {
            input: input.to_owned(),
            reason,
        };
        if ip.is_unspecified() {
            return Err(unusable(
                "the unspecified address cannot be assigned to an interface",
            ));
        }
        if ip.is_multicast() {
            return Err(unusable(
                "a multicast address cannot be assigned to an interface",
            ));
        }
        if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
            return Err(unusable(
                "the limited broadcast address would move the node's broadcast route to the interface",
            ));
        }
        if let IpAddr::V6(v6) = ip {
            if v6.to_ipv4_mapped().is_some() {
                return Err(unusable(
                    "an IPv4-mapped IPv6 address never matches IPv4 traffic: give the IPv4 address itself",
                ));
            }
        }
        Ok(Self(ip))
    }
}

impl fmt::Display for ProxyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0, self.prefix_len())
    }
}

/// The addresses the proxy listens on: one, or two of different families (dual-stack), in the
/// order given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyAddresses(Vec<ProxyAddress>);

impl ProxyAddresses {
    pub fn iter(&self) -> impl Iterator<Item = &ProxyAddress> + '_ {
        self.0.iter()
    }

    pub fn contains(&self, address: &ProxyAddress) -> bool {
        self.0.contains(address)
    }

    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|address| address.ip() == ip)
    }
}

impl From<ProxyAddress> for ProxyAddresses {
    fn from(address: ProxyAddress) -> Self {
        Self(vec![address])
    }
}

impl FromStr for ProxyAddresses {
    type Err = DesiredStateError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let refused = |reason| DesiredStateError::BadAddressList {
            input: input.to_owned(),
            reason,
        };
        let elements: Vec<&str> = input.split(',').collect();
        if elements.len() > 2 {
            return Err(refused("more than two addresses"));
        }
        if elements.len() == 2 && elements.iter().any(|element| element.is_empty()) {
            return Err(refused("an empty element"));
        }
        let addresses = elements
            .into_iter()
            .map(ProxyAddress::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        if let [first, second] = addresses.as_slice() {
            if first.is_ipv6() == second.is_ipv6() {
                return Err(refused("two addresses of one family"));
            }
        }
        Ok(Self(addresses))
    }
}

impl fmt::Display for ProxyAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ips: Vec<String> = self.0.iter().map(|a| a.ip().to_string()).collect();
        f.write_str(&ips.join(","))
    }
}

/// A Linux interface name, as `ip link` would accept it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InterfaceName(String);

impl InterfaceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InterfaceName {
    type Err = DesiredStateError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        // The kernel's `dev_valid_name`: not empty, fits IFNAMSIZ, not "." or "..", no '/', ':'
        // or white space.
        let valid = !input.is_empty()
            && input.len() <= MAX_INTERFACE_NAME_BYTES
            && input != "."
            && input != ".."
            && !input.contains(|c: char| c == '/' || c == ':' || c.is_whitespace());
        if valid {
            Ok(Self(input.to_owned()))
        } else {
            Err(DesiredStateError::BadInterfaceName {
                input: input.to_owned(),
            })
        }
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The addresses the sidecar keeps, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAddress {
    pub addresses: ProxyAddresses,
    pub interface: InterfaceName,
}

/// The addresses `--remove-address` names, removed from every link whoever added them: none may
/// be wanted, or each sync would add and remove it.
pub fn earlier_addresses(
    earlier: &[ProxyAddress],
    wanted: &ProxyAddresses,
) -> Result<Vec<ProxyAddress>, DesiredStateError> {
    let mut unique: Vec<ProxyAddress> = Vec::new();
    for address in earlier {
        if wanted.contains(address) {
            return Err(DesiredStateError::RemovingWanted {
                input: address.ip().to_string(),
            });
        }
        if !unique.contains(address) {
            unique.push(*address);
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("10.96.0.2", "10.96.0.2/32")]
    #[case("100.1.2.3", "100.1.2.3/32")]
    #[case("fd00::2", "fd00::2/128")]
    #[case("2001:db8::1", "2001:db8::1/128")]
    fn proxy_addresses_are_single_hosts(#[case] input: &str, #[case] shown: &str) {
        assert_eq!(
            input.parse::<ProxyAddress>().map(|a| a.to_string()),
            Ok(shown.to_owned())
        );
    }

    #[rstest]
    #[case("")]
    #[case("10.96.0.2/32")]
    #[case("fe80::1%eth0")]
    #[case("10.96.0")]
    #[case("example.com")]
    #[case(" 10.96.0.2")]
    #[case("0.0.0.0")]
    #[case("::")]
    #[case("224.0.0.1")]
    #[case("255.255.255.255")]
    #[case("::ffff:10.96.0.2")]
    fn refuses_what_is_not_a_plain_usable_address(#[case] input: &str) {
        let error = input.parse::<ProxyAddress>().unwrap_err().to_string();
        assert!(
            error.contains(&format!("{input:?}")),
            "{error} does not name the input"
        );
    }

    #[rstest]
    #[case("10.96.0.2", "10.96.0.2")]
    #[case("fd00::2", "fd00::2")]
    #[case("10.96.0.2,fd00::2", "10.96.0.2,fd00::2")]
    #[case("fd00::2,10.96.0.2", "fd00::2,10.96.0.2")]
    fn one_address_or_one_of_each_family(#[case] input: &str, #[case] shown: &str) {
        assert_eq!(
            input.parse::<ProxyAddresses>().map(|a| a.to_string()),
            Ok(shown.to_owned())
        );
    }

    #[rstest]
    #[case::two_of_ipv4("10.96.0.2,10.96.0.3", "two addresses of one family")]
    #[case::two_of_ipv6("fd00::2,fd00::3", "two addresses of one family")]
    #[case::three("10.96.0.2,fd00::2,10.96.0.3", "more than two")]
    #[case::empty_first(",fd00::2", "an empty element")]
    #[case::empty_last("10.96.0.2,", "an empty element")]
    #[case::empty("", "not an IP address")]
    #[case::bad_element("10.96.0.2,fd00::zz", "\"fd00::zz\" is not an IP address")]
    fn refuses_address_lists_that_are_not_one_per_family(
        #[case] input: &str,
        #[case] reason: &str,
    ) {
        let error = input.parse::<ProxyAddresses>().unwrap_err().to_string();
        assert!(error.contains(reason), "{error}");
    }

    #[rstest]
    #[case::none("10.96.0.2", &[], Ok(vec![]))]
    #[case::another("10.96.0.2", &["10.96.0.9"], Ok(vec!["10.96.0.9"]))]
    #[case::twice("10.96.0.2", &["10.96.0.9", "10.96.0.9"], Ok(vec!["10.96.0.9"]))]
    #[case::both_families("10.96.0.2,fd00::2", &["10.96.0.9", "fd00::9"], Ok(vec!["10.96.0.9", "fd00::9"]))]
    #[case::wanted("10.96.0.2", &["10.96.0.9", "10.96.0.2"], Err("\"10.96.0.2\" is also an --ip-address"))]
    #[case::wanted_v6("10.96.0.2,fd00::2", &["fd00::2"], Err("\"fd00::2\" is also an --ip-address"))]
    fn earlier_addresses_are_never_wanted_ones(
        #[case] wanted: &str,
        #[case] earlier: &[&str],
        #[case] expected: Result<Vec<&str>, &str>,
    ) {
        let earlier: Vec<ProxyAddress> = earlier.iter().map(|a| a.parse().unwrap()).collect();
        let got = earlier_addresses(&earlier, &wanted.parse().unwrap());
        match expected {
            Ok(addresses) => {
                let addresses: Vec<ProxyAddress> =
                    addresses.iter().map(|a| a.parse().unwrap()).collect();
                assert_eq!(got, Ok(addresses));
            }
            Err(text) => {
                let error = got.unwrap_err().to_string();
                assert!(error.starts_with(text), "{error}");
            }
        }
    }

    #[rstest]
    #[case("lo")]
    #[case("eth0")]
    #[case("apiserver-proxy")]
    #[case("a23456789012345")]
    fn accepts_kernel_interface_names(#[case] input: &str) {
        assert_eq!(
            input.parse::<InterfaceName>().map(|n| n.to_string()),
            Ok(input.to_owned())
        );
    }

    #[rstest]
    #[case("")]
    #[case("a234567890123456")]
    #[case("eth/0")]
    #[case("eth:0")]
    #[case("eth 0")]
    #[case(".")]
    #[case("..")]
    fn refuses_names_the_kernel_refuses(#[case] input: &str) {
        assert!(input.parse::<InterfaceName>().is_err());
    }
}
