//! Header hygiene between the client and the upstream.
//!
//! - Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are
//!   removed in both directions, including any header the `Connection` header
//!   names. An `Upgrade` handshake keeps `Connection: upgrade` and `Upgrade`.
//! - Every inbound `x-cutover-*` header is removed: only cutover sets them.
//! - `X-Forwarded-For` is replaced by the peer's address, unless the peer is a
//!   trusted proxy, whose list is kept and extended. Kernia rate-limits and
//!   records sessions by the *first* entry and trusts it blindly, so a client
//!   must never choose it. `X-Real-IP` (Kernia's fallback) and `Forwarded` from
//!   untrusted peers are replaced or dropped likewise.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that are always hop-by-hop.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Whether the request asks to switch protocols (WebSocket and the like).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Remove hop-by-hop headers. With `upgrade`, keep the handshake's
/// `Connection: upgrade` and `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Remove every header whose name starts with `x-cutover-`.
pub fn strip_cutover_headers(headers: &mut HeaderMap) {
    let ours: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-cutover-"))
        .cloned()
        .collect();
    for name in ours {
        headers.remove(name);
    }
}

/// The client's address as cutover believes it: the peer, or — when the peer
/// is a trusted proxy — the first address of its `X-Forwarded-For`.
pub fn client_addr(headers: &HeaderMap, peer: IpAddr, trusted_peer: bool) -> IpAddr {
    if !trusted_peer {
        return peer;
    }
    headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .and_then(|x| x.split(',').next())
        .and_then(|first| first.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer)
}

/// Set `X-Forwarded-For`, `-Proto`, `-Host` and `X-Real-IP` for the upstream.
/// `host` is what the client asked for (its `Host`, or the URI authority on
/// HTTP/2). Returns the client address as cutover believes it.
pub fn set_forwarding(
    headers: &mut HeaderMap,
    peer: IpAddr,
    trusted_peer: bool,
    tls: bool,
    host: Option<&str>,
) -> IpAddr {
    let peer_text = peer.to_string();
    let inbound_xff: Option<String> = if trusted_peer {
        let joined = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        (!joined.trim().is_empty()).then_some(joined)
    } else {
        None
    };
    let client = client_addr(headers, peer, trusted_peer);
    let xff = match inbound_xff {
        Some(list) => format!("{list}, {peer_text}"),
        None => peer_text,
    };
    set(headers, X_FORWARDED_FOR, &xff);
    set(headers, X_REAL_IP, &client.to_string());

    if !trusted_peer || !headers.contains_key(&X_FORWARDED_PROTO) {
        set(
            headers,
            X_FORWARDED_PROTO,
            if tls { "https" } else { "http" },
        );
    }
    if !trusted_peer || !headers.contains_key(&X_FORWARDED_HOST) {
        match host {
            Some(h) => set(headers, X_FORWARDED_HOST, h),
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    if !trusted_peer {
        headers.remove(&FORWARDED);
    }
    client
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept"]);
    }

    #[test]
    fn an_upgrade_keeps_its_handshake() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert!(h.contains_key("sec-websocket-key"));
    }

    #[test]
    fn spoofed_forwarding_headers_from_an_untrusted_peer_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let client = set_forwarding(
            &mut h,
            "203.0.113.9".parse().unwrap(),
            false,
            false,
            Some("app.test"),
        );
        assert_eq!(client.to_string(), "203.0.113.9");
        assert_eq!(h.get("x-forwarded-for").unwrap(), "203.0.113.9");
        assert_eq!(h.get("x-real-ip").unwrap(), "203.0.113.9");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "app.test");
        assert!(!h.contains_key("forwarded"));
    }

    #[test]
    fn a_trusted_proxy_list_is_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.7, 10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = set_forwarding(
            &mut h,
            "10.0.0.1".parse().unwrap(),
            true,
            false,
            Some("app.test"),
        );
        assert_eq!(client.to_string(), "198.51.100.7");
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "198.51.100.7, 10.0.0.2, 10.0.0.1"
        );
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
    }

    #[test]
    fn inbound_cutover_headers_are_removed() {
        let mut h = map(&[
            ("x-cutover-user-id", "user_admin"),
            ("X-Cutover-Provider", "kernia"),
            ("x-other", "1"),
        ]);
        strip_cutover_headers(&mut h);
        assert_eq!(h.len(), 1);
    }
}
