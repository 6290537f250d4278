//! IP blocks (`ipBlocks`, `remoteIpBlocks`, `source.ip`, `destination.ip`):
//! an address (`1.2.3.4`, `2001:db8::1`) or a CIDR block (`10.0.0.0/8`).

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl IpBlock {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| format!("`{text}` is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only, no sign or leading zero: `u8::parse` takes `+8`.
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0')) => {
                match p.parse::<u8>() {
                    Ok(p) if p <= max => p,
                    _ => return Err(format!("`{text}`: the prefix length must be 0 to {max}")),
                }
            }
            Some(_) => return Err(format!("`{text}`: the prefix length must be 0 to {max}")),
        };
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => same_prefix(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => same_prefix(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V4(n), IpAddr::V6(a)) => {
                a.to_ipv4_mapped().is_some_and(|a| same_prefix(&n.octets(), &a.octets(), self.prefix))
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a.get(..full) != b.get(..full) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// The IP of an Envoy address property (`1.2.3.4:80`, `[::1]:80`, or a
/// bare IP).
pub fn address_ip(address: &str) -> Option<IpAddr> {
    address.parse::<SocketAddr>().map(|s| s.ip()).ok().or_else(|| address.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_and_single_addresses() {
        let b = IpBlock::parse("10.1.0.0/16").unwrap();
        assert!(b.contains(ip("10.1.200.3")));
        assert!(!b.contains(ip("10.2.0.1")));
        let odd = IpBlock::parse("192.168.1.128/25").unwrap();
        assert!(odd.contains(ip("192.168.1.200")));
        assert!(!odd.contains(ip("192.168.1.127")));
        let one = IpBlock::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        assert!(IpBlock::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        let v6 = IpBlock::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(b.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6 is the IPv4 address");
    }

    #[test]
    fn bad_blocks_are_refused() {
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "host", "", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/08"] {
            assert!(IpBlock::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn envoy_addresses() {
        assert_eq!(address_ip("10.0.0.1:8080"), Some(ip("10.0.0.1")));
        assert_eq!(address_ip("[::1]:8080"), Some(ip("::1")));
        assert_eq!(address_ip("::1"), Some(ip("::1")));
        assert_eq!(address_ip("nonsense"), None);
    }
}
