//! The client's IP behind load balancers: `X-Forwarded-For` is read only when the peer is a
//! trusted proxy, walking it from the right past trusted addresses (rightmost untrusted).

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::error::GatewayError;

/// The header load balancers append the client address to.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The networks whose `X-Forwarded-For` is believed; empty (the default) trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses a comma-separated list of CIDRs or bare addresses (`10.0.0.0/8, ::1`), as
    /// `GATEWAY_TRUSTED_PROXIES` takes it; empty: trust nobody.
    pub fn parse(list: &str) -> Result<Self, GatewayError> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        GatewayError::Config(format!(
                            "trusted proxies: expected a CIDR (10.0.0.0/8) or an address, got {item:?}"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` lies in a trusted network.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer`: `peer` itself unless it is trusted; then the
    /// rightmost `X-Forwarded-For` address outside the trusted networks (the leftmost one if
    /// every address is trusted). A missing or malformed header falls back to `peer`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut entries: Vec<&str> = Vec::new();
        for value in headers.get_all(FORWARDED_FOR) {
            let Ok(value) = value.to_str() else {
                return peer;
            };
            entries.extend(value.split(','));
        }
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                return peer;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` element: an address, optionally `[v6]` or with a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|addr| addr.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(FORWARDED_FOR, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_cidrs_and_addresses_and_refuses_garbage() {
        let trusted = TrustedProxies::parse(" 10.0.0.0/8, 192.168.1.7 ,::1,, fd00::/8").unwrap();
        assert!(trusted.trusts(ip("10.1.2.3")));
        assert!(trusted.trusts(ip("192.168.1.7")));
        assert!(!trusted.trusts(ip("192.168.1.8")));
        assert!(trusted.trusts(ip("::1")));
        assert!(trusted.trusts(ip("fd12::1")));
        assert!(trusted.trusts(ip("::ffff:10.9.9.9")), "IPv4-mapped peers");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "ten", "10.0.0.0/8,nope"] {
            let err = TrustedProxies::parse(bad).unwrap_err();
            assert!(err.to_string().contains("trusted proxies"), "{err}");
        }
    }

    #[test]
    fn walks_forwarded_for_from_the_right_past_trusted_proxies() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let alb = ip("10.0.0.5");
        let spoofed = headers(&["6.6.6.6, 203.0.113.9, 10.0.3.3"]);
        assert_eq!(trusted.client_ip(alb, &spoofed), ip("203.0.113.9"));
        // Several header lines are one list, in order.
        let split = headers(&["6.6.6.6", "203.0.113.9:5555", "10.0.3.3"]);
        assert_eq!(trusted.client_ip(alb, &split), ip("203.0.113.9"));
        let v6 = headers(&["[2001:db8::1]:443"]);
        assert_eq!(trusted.client_ip(alb, &v6), ip("2001:db8::1"));
        // Every hop trusted: the leftmost.
        let internal = headers(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(trusted.client_ip(alb, &internal), ip("10.1.1.1"));
        // No header, or an empty or malformed element before an untrusted one: the peer.
        assert_eq!(trusted.client_ip(alb, &HeaderMap::new()), alb);
        for bad in ["203.0.113.9, nonsense", "203.0.113.9,,10.0.3.3", ""] {
            assert_eq!(trusted.client_ip(alb, &headers(&[bad])), alb, "{bad:?}");
        }
        // A malformed element left of the client does not matter.
        let left = headers(&["nonsense, 203.0.113.9"]);
        assert_eq!(trusted.client_ip(alb, &left), ip("203.0.113.9"));
        // An untrusted peer's header is ignored.
        let direct = ip("198.51.100.1");
        assert_eq!(trusted.client_ip(direct, &spoofed), direct);
        assert_eq!(
            TrustedProxies::default().client_ip(alb, &spoofed),
            alb,
            "nobody trusted by default"
        );
    }
}
