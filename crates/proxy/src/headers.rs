//! Header rewriting at the edge: hop-by-hop headers are removed in both
//! directions, `X-Forwarded-*` and `X-Request-Id` are set by the proxy
//! (never appended to what an untrusted client sent).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether the request asks to switch protocols (`Connection: upgrade` + `Upgrade`).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether `name` is hop-by-hop by itself (not only by being named in `Connection`).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name.as_str().starts_with("proxy-")
}

/// Removes hop-by-hop headers; `keep_upgrade` keeps `Connection: upgrade`
/// and `Upgrade` for a protocol switch.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages have none: one pass over the names, no lookups.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Headers named by Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    headers.remove(header::CONNECTION);
    headers.remove(&KEEP_ALIVE);
    headers.remove(header::TE);
    headers.remove(header::TRAILER);
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::PROXY_AUTHENTICATE);
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove(&PROXY_CONNECTION);
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
    let proxy_named: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy_named {
        headers.remove(name);
    }
}

/// The client's address as `X-Forwarded-For` carries it (IPv4-mapped IPv6
/// shown as IPv4); computed once per connection for the peer, per request
/// only when a trusted proxy names another client (see `client_ip`).
pub(crate) fn forwarded_for(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip_text(client)).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Sets `X-Forwarded-For/-Proto/-Host` and `X-Request-Id`, replacing what
/// the client sent.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    secure: bool,
    host: Option<&HeaderValue>,
    request_id: &HeaderValue,
) {
    headers.insert(&X_FORWARDED_FOR, client.clone());
    let proto = if secure { "https" } else { "http" };
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match host {
        Some(h) => headers.insert(&X_FORWARDED_HOST, h.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
    headers.insert(&X_REQUEST_ID, request_id.clone());
}

fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Request ids a thread takes from [`new_request_id`]'s counter at a time.
const ID_BLOCK: u64 = 1 << 32;

/// A new request id: 32 hex digits, unique within this process and unlikely
/// to repeat across restarts. Each worker counts in a block of its own, so
/// the workers share no counter.
pub(crate) fn new_request_id() -> HeaderValue {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static BLOCKS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        /// The next id of this thread's block, and the block's end.
        static RANGE: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    let seed = *SEED.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    });
    let n = RANGE.with(|range| {
        let (mut next, mut end) = range.get();
        if next == end {
            next = BLOCKS.fetch_add(ID_BLOCK, Ordering::Relaxed);
            end = next.wrapping_add(ID_BLOCK);
        }
        range.set((next.wrapping_add(1), end));
        next
    });
    // Mix the counter so consecutive ids do not look sequential.
    let mixed = (n ^ seed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
        ^ seed;
    let mut buf = [0u8; 32];
    hex(seed, &mut buf[..16]);
    hex(mixed, &mut buf[16..]);
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 15) as usize];
        v >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn upgrades_keep_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }

    #[test]
    fn forwarded_headers_are_replaced_not_appended() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("spoofed"));
        let id = new_request_id();
        let host = HeaderValue::from_static("example.com");
        let client = forwarded_for("::ffff:10.0.0.1".parse().unwrap());
        set_forwarded(&mut h, &client, true, Some(&host), &id);
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "example.com");
        assert_eq!(h[&X_REQUEST_ID], id);
        assert_ne!(new_request_id(), new_request_id());
        assert_eq!(id.len(), 32);
    }
}
