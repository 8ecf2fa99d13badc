//! Address ranges for `allowed_cidrs`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network, written `address/prefix-length` (`10.0.0.0/8`, `2001:db8::/32`).
///
/// A bare address means that single host (`/32` or `/128`). The address must be the network's
/// first address: `10.0.0.1/8` is refused rather than silently widened. IPv4-mapped IPv6
/// networks (`::ffff:10.0.0.0/104`) are stored as the IPv4 network they describe, and
/// [`Cidr::contains`] compares IPv4-mapped IPv6 sources (what a dual-stack socket reports for an
/// IPv4 peer) as IPv4, so `10.0.0.0/8` covers `::ffff:10.1.2.3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` lies inside the network. IPv4 and IPv6 networks never contain each
    /// other's addresses, except that IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u32::from(net) ^ u32::from(a)) & mask == 0
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u128::from(net) ^ u128::from(a)) & mask == 0
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// Parses `address/prefix` or a bare address; the error is a reason for a diagnostic.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not a CIDR: `{addr}` is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let valid = !p.is_empty()
                    && p.len() <= 3
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p == "0" || !p.starts_with('0'));
                match p.parse::<u8>() {
                    Ok(n) if valid && n <= max => n,
                    _ => {
                        return Err(format!(
                            "`{s}` is not a CIDR: the prefix length must be 0 to {max}"
                        ));
                    }
                }
            }
        };
        let mut cidr = Cidr { network, prefix };
        if let IpAddr::V6(v6) = network {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                cidr = Cidr {
                    network: IpAddr::V4(v4),
                    prefix: prefix - 96,
                };
            }
        }
        let first = cidr.first_address();
        if first != cidr.network {
            return Err(format!(
                "`{s}` has host bits set: the network is {first}/{}",
                cidr.prefix
            ));
        }
        Ok(cidr)
    }
}

impl Cidr {
    fn first_address(&self) -> IpAddr {
        match self.network {
            IpAddr::V4(net) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(net) & mask))
            }
            IpAddr::V6(net) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(net) & mask))
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.0.0.0")));
        assert!(net.contains(ip("10.255.255.255")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(!net.contains(ip("9.255.255.255")));
        assert!(
            !net.contains(ip("::a00:1")),
            "IPv6 is never inside an IPv4 net"
        );

        let host = cidr("192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.6")));
        assert_eq!(cidr("192.0.2.7"), host, "a bare address is a /32");

        let all = cidr("0.0.0.0/0");
        assert!(all.contains(ip("0.0.0.0")));
        assert!(all.contains(ip("255.255.255.255")));
        assert!(!all.contains(ip("::1")));

        let odd = cidr("172.16.0.0/12");
        assert!(odd.contains(ip("172.31.255.255")));
        assert!(!odd.contains(ip("172.32.0.0")));
    }

    #[test]
    fn ipv6() {
        let net = cidr("2001:db8::/32");
        assert!(net.contains(ip("2001:db8::1")));
        assert!(net.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!net.contains(ip("2001:db9::")));
        assert!(!net.contains(ip("32.1.13.184")));

        let host = cidr("2001:db8::7/128");
        assert!(host.contains(ip("2001:db8::7")));
        assert!(!host.contains(ip("2001:db8::8")));
        assert_eq!(cidr("2001:db8::7"), host);

        let all = cidr("::/0");
        assert!(all.contains(ip("::")));
        assert!(all.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!all.contains(ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("10.0.0.0/8").contains(ip("::ffff:11.1.2.3")));
        let mapped = cidr("::ffff:10.0.0.0/104");
        assert_eq!(mapped, cidr("10.0.0.0/8"));
        assert!(mapped.contains(ip("10.9.9.9")));
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "010.0.0.0/8",
            "::/129",
            "fe80::1%eth0/128",
            "localhost/32",
            " 10.0.0.0/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        let err = "10.0.0.1/8".parse::<Cidr>().unwrap_err();
        assert!(
            err.contains("host bits") && err.contains("10.0.0.0/8"),
            "{err}"
        );
        let err = "2001:db8::1/32".parse::<Cidr>().unwrap_err();
        assert!(err.contains("2001:db8::/32"), "{err}");
    }

    #[test]
    fn displays_normalised() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("2001:0db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("1.2.3.4").to_string(), "1.2.3.4/32");
    }
}
