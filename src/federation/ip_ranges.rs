//! Which addresses outgoing connections may reach (`[network]` `deny_ranges`, `allow_ranges`):
//! CIDR ranges and the check of one resolved address (pure). An IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) is matched as its IPv4 address too, so `::ffff:127.0.0.1` is loopback.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use crate::config::NetworkConfig;

/// The default `network.deny_ranges`: what Synapse's `ip_range_blacklist` lists, plus the
/// unspecified addresses and the reserved 240.0.0.0/4 and broadcast.
pub const DEFAULT_DENY_RANGES: &[&str] = &[
    // IPv4: "this network", RFC 1918, CGNAT, loopback, link-local, protocol assignments,
    // documentation, 6to4 relay, benchmarking, multicast, reserved, broadcast.
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    // IPv6: unspecified, loopback, NAT64 of the well-known prefix (maps IPv4 inside), discard,
    // documentation, unique local, site-local, link-local, multicast.
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// One CIDR range (`10.0.0.0/8`, `fc00::/7`; a bare address is a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not an address range (like 10.0.0.0/8 or fc00::/7)");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }
}

impl IpRange {
    /// Whether `ip` (of the same family) is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (a >> shift) == (b >> shift)
}

/// The forms an address is matched under: itself, and the IPv4 address inside an IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated) or NAT64 (`64:ff9b::a.b.c.d`)
/// IPv6 address.
fn forms(ip: IpAddr) -> impl Iterator<Item = IpAddr> {
    let inner: Option<Ipv4Addr> = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .or_else(|| compatible_v4(v6))
            .or_else(|| nat64_v4(v6)),
        IpAddr::V4(_) => None,
    };
    std::iter::once(ip).chain(inner.map(IpAddr::V4))
}

/// `::a.b.c.d` (not `::` and `::1`, which are IPv6's own unspecified and loopback).
fn compatible_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    (bits >> 32 == 0 && bits > 1).then(|| Ipv4Addr::from(bits as u32))
}

/// `64:ff9b::a.b.c.d`, the well-known NAT64 prefix (RFC 6052).
fn nat64_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    (bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000).then(|| Ipv4Addr::from(bits as u32))
}

/// The deny and allow lists of `[network]`, parsed.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    deny: Vec<IpRange>,
    allow: Vec<IpRange>,
}

impl AddressPolicy {
    pub fn new(deny: Vec<IpRange>, allow: Vec<IpRange>) -> Self {
        Self { deny, allow }
    }

    pub fn from_config(config: &NetworkConfig) -> Result<Self, String> {
        let parse = |key: &str, list: &[String]| -> Result<Vec<IpRange>, String> {
            list.iter()
                .map(|r| r.parse().map_err(|e| format!("`network.{key}`: {e}")))
                .collect()
        };
        Ok(Self {
            deny: parse("deny_ranges", &config.deny_ranges)?,
            allow: parse("allow_ranges", &config.allow_ranges)?,
        })
    }

    /// Whether an outgoing connection may go to `ip`: allowed when an allow range holds it (in
    /// any of its forms), else when no deny range holds it (in any of its forms).
    pub fn permits(&self, ip: IpAddr) -> bool {
        let holds =
            |ranges: &[IpRange]| forms(ip).any(|form| ranges.iter().any(|r| r.contains(form)));
        holds(&self.allow) || !holds(&self.deny)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy(allow: &[&str]) -> AddressPolicy {
        let deny = DEFAULT_DENY_RANGES
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        AddressPolicy::new(deny, allow.iter().map(|r| r.parse().unwrap()).collect())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match_by_prefix() {
        let range: IpRange = "172.16.0.0/12".parse().unwrap();
        assert!(range.contains(ip("172.16.0.1")));
        assert!(range.contains(ip("172.31.255.255")));
        assert!(!range.contains(ip("172.32.0.0")));
        assert!(
            !range.contains(ip("::ffff:172.16.0.1")),
            "families are matched separately"
        );
        let one: IpRange = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let ula: IpRange = "fc00::/7".parse().unwrap();
        assert!(ula.contains(ip("fd12:3456::1")) && !ula.contains(ip("fe00::1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "nope",
            "10.0.0/8",
            "10.0.0.0/x",
            "",
        ] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_deny_list_refuses_private_addresses() {
        let policy = default_policy(&[]);
        for denied in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
        ] {
            assert!(!policy.permits(ip(denied)), "{denied}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2001:4860:4860::8888",
            "2a00:1450::1",
        ] {
            assert!(policy.permits(ip(public)), "{public}");
        }
    }

    #[test]
    fn ipv4_mapped_and_compatible_forms_are_matched_as_ipv4() {
        let policy = default_policy(&[]);
        for denied in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::ffff:0.0.0.0",
            "64:ff9b::10.0.0.1",
        ] {
            assert!(!policy.permits(ip(denied)), "{denied}");
        }
        assert!(policy.permits(ip("::ffff:8.8.8.8")));
        assert!(policy.permits(ip("64:ff9b::8.8.8.8")));
        // The allow list matches mapped forms too.
        let policy = default_policy(&["127.0.0.0/8"]);
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(!policy.permits(ip("::1")));
    }

    #[test]
    fn the_allow_list_overrides_the_deny_list() {
        let policy = default_policy(&["127.0.0.0/8", "::1/128", "10.5.0.0/16"]);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::1")));
        assert!(policy.permits(ip("10.5.3.4")));
        assert!(!policy.permits(ip("10.6.0.1")));
        assert!(!policy.permits(ip("192.168.0.1")));
        // Nothing denied: everything goes.
        assert!(AddressPolicy::default().permits(ip("127.0.0.1")));
    }

    #[test]
    fn configured_lists_are_checked() {
        let config = NetworkConfig {
            deny_ranges: vec!["10.0.0.0/8".into()],
            allow_ranges: vec!["bad".into()],
        };
        assert!(
            AddressPolicy::from_config(&config)
                .unwrap_err()
                .contains("network.allow_ranges")
        );
        let config = NetworkConfig {
            deny_ranges: vec!["10.0.0.0/8".into()],
            allow_ranges: vec![],
        };
        let policy = AddressPolicy::from_config(&config).unwrap();
        assert!(!policy.permits(ip("10.0.0.1")) && policy.permits(ip("127.0.0.1")));
    }
}
