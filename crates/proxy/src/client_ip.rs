//! Who the client is: the TCP peer, unless the peer is one of
//! `trusted_proxies`; then the address its `X-Forwarded-For` names.
//!
//! The list is walked right to left (the nearest hop first) to the first
//! address that is not a trusted proxy; if every one is trusted, the
//! leftmost wins; an entry that does not parse stops the walk at the last
//! good address. An untrusted peer's `X-Forwarded-For` is never read, so
//! forging one changes nothing. With no trusted proxies (the default) this
//! costs one branch and no allocation.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;

use crate::headers::{X_FORWARDED_FOR, forwarded_for};

/// `trusted_proxies`: the peers whose `X-Forwarded-For` is believed.
#[derive(Debug, Default)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

/// A request's client as the proxy sees it.
#[derive(Debug)]
pub(crate) struct Client {
    /// For the access log, `allow` and `rate_limit`.
    pub(crate) ip: IpAddr,
    /// `X-Forwarded-For` for the upstream when it is not the connection's
    /// own (the peer's); `None` on the fast path.
    pub(crate) forwarded_for: Option<HeaderValue>,
}

impl TrustedProxies {
    pub(crate) fn new(networks: &[IpNet]) -> Self {
        TrustedProxies(networks.to_vec())
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Client {
        let peer = peer.to_canonical();
        if self.0.is_empty() || !self.contains(peer) {
            return Client {
                ip: peer,
                forwarded_for: None,
            };
        }
        let ip = walk(peer, headers, |ip| self.contains(ip));
        Client {
            ip,
            forwarded_for: (ip != peer).then(|| forwarded_for(ip)),
        }
    }
}

/// The right-to-left walk of every `X-Forwarded-For` line, starting from a
/// trusted `peer`.
fn walk(peer: IpAddr, headers: &HeaderMap, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    let mut last_good = peer;
    let lines = headers.get_all(&X_FORWARDED_FOR).iter().rev();
    for line in lines {
        let Ok(line) = line.to_str() else {
            return last_good;
        };
        for entry in line.rsplit(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some(ip) = parse_entry(entry) else {
                return last_good;
            };
            if !trusted(ip) {
                return ip;
            }
            last_good = ip;
        }
    }
    last_good
}

/// An address as proxies write it: `1.2.3.4`, `2001:db8::1`, or with a
/// port (`1.2.3.4:5678`, `[2001:db8::1]:5678`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(trusted: &[&str], peer: &str, xff: &[&str]) -> String {
        let nets: Vec<IpNet> = trusted
            .iter()
            .map(|t| berth_compose::xberth::parse_network(t).unwrap())
            .collect();
        let mut headers = HeaderMap::new();
        for line in xff {
            headers.append(&X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        let c = TrustedProxies::new(&nets).client(peer.parse().unwrap(), &headers);
        let sent = c.forwarded_for.map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            sent.as_deref().unwrap_or(&c.ip.to_string()),
            c.ip.to_string()
        );
        c.ip.to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(client(&[], "203.0.113.9", &["1.1.1.1"]), "203.0.113.9");
        assert_eq!(
            client(&["10.0.0.0/8"], "203.0.113.9", &["1.1.1.1"]),
            "203.0.113.9"
        );
        assert_eq!(client(&[], "::ffff:10.0.0.1", &[]), "10.0.0.1");
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_address_from_the_right() {
        let t = &["10.0.0.0/8"];
        // The client forged 6.6.6.6; 10.0.0.2 and the peer are our proxies.
        assert_eq!(
            client(t, "10.0.0.1", &["6.6.6.6, 198.51.100.7, 10.0.0.2"]),
            "198.51.100.7"
        );
        // Several header lines are one list, the last line nearest.
        assert_eq!(
            client(t, "10.0.0.1", &["6.6.6.6", "198.51.100.7", "10.0.0.2"]),
            "198.51.100.7"
        );
        assert_eq!(
            client(t, "10.0.0.1", &["2001:db8::5 , 10.9.9.9"]),
            "2001:db8::5"
        );
        assert_eq!(
            client(t, "10.0.0.1", &["198.51.100.7:4711"]),
            "198.51.100.7"
        );
        assert_eq!(
            client(t, "10.0.0.1", &["[2001:db8::5]:4711"]),
            "2001:db8::5"
        );
    }

    #[test]
    fn all_trusted_gives_the_leftmost_and_none_gives_the_peer() {
        let t = &["10.0.0.0/8"];
        assert_eq!(client(t, "10.0.0.1", &["10.0.0.3, 10.0.0.2"]), "10.0.0.3");
        assert_eq!(client(t, "10.0.0.1", &[]), "10.0.0.1");
        assert_eq!(client(t, "10.0.0.1", &[" , "]), "10.0.0.1");
    }

    #[test]
    fn an_unparsable_entry_stops_at_the_last_good_address() {
        let t = &["10.0.0.0/8"];
        assert_eq!(
            client(t, "10.0.0.1", &["1.2.3.4, unknown, 10.0.0.2"]),
            "10.0.0.2"
        );
        assert_eq!(client(t, "10.0.0.1", &["1.2.3.4, garbage"]), "10.0.0.1");
    }
}
