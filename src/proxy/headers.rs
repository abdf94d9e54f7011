//! Header hygiene between the client and the upstream.
//!
//! - Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are
//!   removed in both directions, including any header the `Connection` header
//!   names. An `Upgrade` handshake keeps `Connection: upgrade` and `Upgrade`.
//! - Headers cutover sets or reserves are removed from every inbound request:
//!   `x-cutover-*` always; `x-forwarded-*`, `x-real-ip` and `forwarded` unless
//!   the peer is a trusted proxy. Names are compared with `_` read as `-`:
//!   WSGI, CGI and Rack servers fold both into the same variable
//!   (`HTTP_X_CUTOVER_USER_ID`), so `x_cutover_user_id` would otherwise reach
//!   the app as the identity header (the CVE-2024-45614 class). An underscore
//!   spelling of any reserved name is dropped even from a trusted proxy.
//! - `true-client-ip`, `cf-connecting-ip` and `x-client-ip` (client addresses
//!   set by CDNs) are dropped unless the peer is a trusted proxy.
//! - `X-Forwarded-For`: from an untrusted peer it is replaced by the peer's
//!   address. From a trusted proxy, the client is the *rightmost* address that
//!   is not itself a trusted proxy: proxies append, so everything left of that
//!   was written by the client and can say anything. The upstream gets a list
//!   that starts with the client (Kernia rate-limits and records sessions by
//!   the first entry and trusts it blindly), followed by the trusted hops and
//!   the peer. `X-Real-IP` (Kernia's fallback) is always the client.
//! - Several `Cookie` headers (HTTP/2 splits them) are joined into one with
//!   `; ` (RFC 9113 §8.2.3) before the request goes upstream over HTTP/1.1,
//!   so the app reads the same cookies cutover read (a Python app typically
//!   looks at the first `Cookie` header only).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// Headers that are always hop-by-hop.
static HOP_BY_HOP: [HeaderName; 8] = [
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

/// Whether a (lower-case) name is in [`HOP_BY_HOP`]: a match on the text,
/// cheaper than comparing header names.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
    )
}

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
    // Names the pass below removes anyway (`keep-alive`, on nearly every
    // answer) need no header name made for them.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            !HOP_BY_HOP
                .iter()
                .any(|h| h.as_str().eq_ignore_ascii_case(t))
        })
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        if upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    // Most requests carry none of them, most answers only `Connection`: one
    // pass over the names present, then removals until all of those are gone.
    let mut present = headers.keys().filter(|k| is_hop_by_hop(k.as_str())).count();
    for name in &HOP_BY_HOP {
        if present == 0 {
            break;
        }
        if headers.remove(name).is_some() {
            present -= 1;
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Headers cutover sets for the upstream, besides `x-cutover-*`, in their
/// canonical (dash, lower-case) spelling.
const FORWARDING: [&str; 2] = ["x-real-ip", "forwarded"];

/// Client addresses set by CDNs; only a trusted proxy may send them.
const CDN_CLIENT_IP: [&str; 3] = ["true-client-ip", "cf-connecting-ip", "x-client-ip"];

/// A header name with `_` read as `-` (names are lower-case already).
fn folded(name: &HeaderName) -> std::borrow::Cow<'_, str> {
    let s = name.as_str();
    if s.contains('_') {
        std::borrow::Cow::Owned(s.replace('_', "-"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Whether a (folded) name is one of cutover's forwarding headers.
fn is_forwarding(folded: &str) -> bool {
    folded.starts_with("x-forwarded-") || FORWARDING.contains(&folded)
}

/// Remove every header whose name, with `_` read as `-`, starts with
/// `x-cutover-`, and every underscore spelling of a forwarding or CDN
/// client-address header (`x_forwarded_for`, `x_real_ip`, `true_client_ip`…):
/// only cutover sets them. The dash spellings of forwarding headers are
/// handled by [`set_forwarding`], which knows whether the peer is trusted.
pub fn strip_cutover_headers(headers: &mut HeaderMap) {
    let ours: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let f = folded(k);
            f.starts_with("x-cutover-")
                || (k.as_str().contains('_')
                    && (is_forwarding(&f) || CDN_CLIENT_IP.contains(&f.as_ref())))
        })
        .cloned()
        .collect();
    for name in ours {
        headers.remove(name);
    }
}

/// Join several `Cookie` headers into one, `; `-separated, in order.
pub fn join_cookies(headers: &mut HeaderMap) {
    let values: Vec<&HeaderValue> = headers.get_all(header::COOKIE).iter().collect();
    if values.len() < 2 {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for v in values {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    match HeaderValue::from_bytes(&joined) {
        Ok(v) => {
            headers.insert(header::COOKIE, v);
        }
        Err(_) => {
            headers.remove(header::COOKIE);
        }
    }
}

/// One `X-Forwarded-For` entry as an address: `1.2.3.4`, `2001:db8::1`, and
/// with a port (`1.2.3.4:5678`, `[2001:db8::1]:443`, as some balancers write).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The inbound `X-Forwarded-For` entries, every header joined, in order.
fn xff_entries(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// The client as cutover believes it, and the trusted hops between it and
/// the peer (the part of the inbound list to forward after the client).
///
/// From an untrusted peer: the peer. From a trusted proxy: walk its
/// `X-Forwarded-For` from the right, past every trusted proxy; the first
/// address that is not one is the client. An entry that is not an address
/// stops the walk: the last trusted hop reached is then the best answer (the
/// peer itself when there was none). When every entry is trusted, the
/// leftmost is the client.
fn resolve<'h>(
    headers: &'h HeaderMap,
    peer: IpAddr,
    trusted: &dyn Fn(IpAddr) -> bool,
) -> (IpAddr, Vec<&'h str>) {
    if !trusted(peer) {
        return (peer, Vec::new());
    }
    let entries = xff_entries(headers);
    let mut client = peer;
    let mut start = entries.len();
    for (i, entry) in entries.iter().enumerate().rev() {
        let Some(ip) = parse_entry(entry) else { break };
        client = ip;
        start = i;
        if !trusted(ip) {
            break;
        }
    }
    let hops = entries
        .get(start + 1..)
        .map(<[&str]>::to_vec)
        .unwrap_or_default();
    (client, hops)
}

/// Whether `ip` is in one of `nets`.
pub fn in_nets(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|net| net.contains(&ip))
}

/// The client's address as cutover believes it (see [`resolve`]): the peer,
/// or — when the peer is a trusted proxy — the rightmost `X-Forwarded-For`
/// address that is not a trusted proxy.
pub fn client_addr(headers: &HeaderMap, peer: IpAddr, trusted_proxies: &[IpNet]) -> IpAddr {
    resolve(headers, peer, &|ip| in_nets(trusted_proxies, ip)).0
}

/// Set `X-Forwarded-For`, `-Proto`, `-Host` and `X-Real-IP` for the upstream,
/// and drop the forwarding and CDN client-address headers an untrusted peer
/// sent. `host` is what the client asked for (its `Host`, or the URI
/// authority on HTTP/2). Returns the client address as cutover believes it.
pub fn set_forwarding(
    headers: &mut HeaderMap,
    peer: IpAddr,
    peer_value: Option<&HeaderValue>,
    trusted_proxies: &[IpNet],
    tls: bool,
    host: Option<HeaderValue>,
) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted_peer = in_nets(trusted_proxies, peer);
    // The client's address as text is both `X-Real-IP` and, usually, the whole
    // `X-Forwarded-For`: one value shared by both. When the client is the
    // peer, it is the connection's own (`peer_value`, made once per
    // connection by [`ip_value`]).
    let (client, client_value, xff) = {
        let (client, hops) = resolve(headers, peer, &|ip| in_nets(trusted_proxies, ip));
        let client_value = match peer_value {
            Some(v) if client == peer => v.clone(),
            _ => ip_value(client),
        };
        let xff = if hops.is_empty() && !(trusted_peer && client != peer) {
            None
        } else {
            let mut list = client.to_string();
            for hop in &hops {
                list.push_str(", ");
                list.push_str(hop);
            }
            if trusted_peer && client != peer {
                list.push_str(", ");
                list.push_str(&peer.to_string());
            }
            Some(list)
        };
        (client, client_value, xff)
    };
    if !trusted_peer {
        let spoofable: Vec<HeaderName> = headers
            .keys()
            .filter(|k| {
                let f = folded(k);
                is_forwarding(&f) || CDN_CLIENT_IP.contains(&f.as_ref())
            })
            .cloned()
            .collect();
        for name in spoofable {
            headers.remove(name);
        }
    }
    match xff {
        Some(list) => set_value(headers, X_FORWARDED_FOR, owned_value(list)),
        None => {
            headers.insert(X_FORWARDED_FOR, client_value.clone());
        }
    }
    headers.insert(X_REAL_IP, client_value);

    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(
            X_FORWARDED_PROTO,
            HeaderValue::from_static(if tls { "https" } else { "http" }),
        );
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        set_value(headers, X_FORWARDED_HOST, host);
    }
    client
}

/// An address as a header value (`X-Real-IP`, `X-Forwarded-For`), in its
/// canonical form (an IPv4-mapped IPv6 address as IPv4).
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    // An address's text is always a valid header value.
    owned_value(ip.to_canonical().to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// A header value that takes `text`'s buffer instead of copying it.
fn owned_value(text: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).ok()
}

fn set_value(headers: &mut HeaderMap, name: HeaderName, value: Option<HeaderValue>) {
    match value {
        Some(v) => {
            headers.insert(name, v);
        }
        None => {
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

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    /// (client, forwarded X-Forwarded-For) for an inbound list from `peer`.
    fn forwarded(xff: &[&str], peer: &str, trusted: &[&str]) -> (String, String) {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        let peer = peer.parse().unwrap();
        let trusted = nets(trusted);
        let client = set_forwarding(&mut h, peer, Some(&ip_value(peer)), &trusted, false, None);
        assert_eq!(
            client,
            client_addr(
                &{
                    let mut again = HeaderMap::new();
                    for v in xff {
                        again.append("x-forwarded-for", v.parse().unwrap());
                    }
                    again
                },
                peer,
                &trusted
            )
        );
        assert_eq!(h.get("x-real-ip").unwrap(), client.to_string().as_str());
        (
            client.to_string(),
            h.get("x-forwarded-for")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string(),
        )
    }

    #[test]
    fn the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() {
        let lb = ["10.0.0.0/8"];
        // A client behind an appending balancer writes the leftmost entry itself.
        assert_eq!(
            forwarded(&["6.6.6.6, 198.51.100.7"], "10.0.0.1", &lb),
            ("198.51.100.7".into(), "198.51.100.7, 10.0.0.1".into())
        );
        // Several trusted hops; the client's own entries are cut off.
        assert_eq!(
            forwarded(
                &["6.6.6.6, 198.51.100.7, 10.0.0.3", "10.0.0.2"],
                "10.0.0.1",
                &lb
            ),
            (
                "198.51.100.7".into(),
                "198.51.100.7, 10.0.0.3, 10.0.0.2, 10.0.0.1".into()
            )
        );
        // Garbage written by the client, left of the real address, is dropped.
        assert_eq!(
            forwarded(&["not-an-ip, unknown, 198.51.100.7"], "10.0.0.1", &lb),
            ("198.51.100.7".into(), "198.51.100.7, 10.0.0.1".into())
        );
        // Ports and brackets, as some balancers write them.
        assert_eq!(
            forwarded(&["198.51.100.7:4711"], "10.0.0.1", &lb).0,
            "198.51.100.7"
        );
        assert_eq!(
            forwarded(&["[2001:db8::7]:443"], "10.0.0.1", &lb).0,
            "2001:db8::7"
        );
        // Garbage where an address should be: the last trusted hop reached.
        assert_eq!(
            forwarded(&["6.6.6.6, garbage, 10.0.0.2"], "10.0.0.1", &lb),
            ("10.0.0.2".into(), "10.0.0.2, 10.0.0.1".into())
        );
        assert_eq!(
            forwarded(&["garbage"], "10.0.0.1", &lb),
            ("10.0.0.1".into(), "10.0.0.1".into())
        );
        // Every entry trusted: the leftmost.
        assert_eq!(
            forwarded(&["10.0.0.9, 10.0.0.2"], "10.0.0.1", &lb),
            ("10.0.0.9".into(), "10.0.0.9, 10.0.0.2, 10.0.0.1".into())
        );
        // No list from a trusted proxy, or an untrusted peer: the peer.
        assert_eq!(
            forwarded(&[], "10.0.0.1", &lb),
            ("10.0.0.1".into(), "10.0.0.1".into())
        );
        assert_eq!(
            forwarded(&["198.51.100.7"], "203.0.113.9", &lb),
            ("203.0.113.9".into(), "203.0.113.9".into())
        );
        // An IPv4-mapped peer counts as its IPv4 address.
        assert_eq!(
            forwarded(&["198.51.100.7"], "::ffff:10.0.0.1", &lb).0,
            "198.51.100.7"
        );
    }

    #[test]
    fn underscore_spellings_of_reserved_headers_are_dropped() {
        let mut h = map(&[
            ("x_cutover_user_id", "user_victim"),
            ("x-cutover_provider", "kernia"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x_real_ip", "6.6.6.6"),
            ("true_client_ip", "6.6.6.6"),
            ("x_custom_header", "kept"),
            ("accept", "*/*"),
        ]);
        strip_cutover_headers(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "x_custom_header"]);
    }

    #[test]
    fn cdn_and_forwarding_headers_count_only_from_trusted_proxies() {
        let sent = [
            ("true-client-ip", "6.6.6.6"),
            ("cf-connecting-ip", "6.6.6.6"),
            ("x-client-ip", "6.6.6.6"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/evil"),
        ];
        let mut h = map(&sent);
        set_forwarding(
            &mut h,
            "203.0.113.9".parse().unwrap(),
            None,
            &[],
            false,
            None,
        );
        for (name, _) in sent {
            assert!(!h.contains_key(name), "{name} from an untrusted peer");
        }
        let mut h = map(&sent);
        set_forwarding(
            &mut h,
            "10.0.0.1".parse().unwrap(),
            None,
            &nets(&["10.0.0.0/8"]),
            false,
            None,
        );
        for (name, _) in sent {
            assert!(h.contains_key(name), "{name} from a trusted proxy");
        }
    }

    #[test]
    fn the_connections_own_address_value_serves_only_the_peer_itself() {
        let made_once = HeaderValue::from_static("made-once-per-connection");
        let mut h = HeaderMap::new();
        let peer = "203.0.113.9".parse().unwrap();
        set_forwarding(&mut h, peer, Some(&made_once), &[], false, None);
        assert_eq!(h.get("x-real-ip").unwrap(), "made-once-per-connection");
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "made-once-per-connection"
        );
        // Through a trusted proxy the client is someone else: its own text.
        let mut h = map(&[("x-forwarded-for", "198.51.100.7")]);
        let proxy = "10.0.0.1".parse().unwrap();
        set_forwarding(
            &mut h,
            proxy,
            Some(&made_once),
            &nets(&["10.0.0.0/8"]),
            false,
            None,
        );
        assert_eq!(h.get("x-real-ip").unwrap(), "198.51.100.7");
        assert_eq!(h.get("x-forwarded-for").unwrap(), "198.51.100.7, 10.0.0.1");
        assert_eq!(ip_value("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
        assert_eq!(ip_value("2001:db8::1".parse().unwrap()), "2001:db8::1");
    }

    #[test]
    fn cookie_headers_are_joined() {
        let mut h = map(&[("cookie", "a=1; b=2"), ("cookie", "c=3")]);
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h.get("cookie").unwrap(), "a=1; b=2; c=3");
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
    fn every_hop_by_hop_name_goes_however_many_values_it_has() {
        let mut h = map(&[
            ("te", "trailers"),
            ("te", "gzip"),
            ("proxy-authorization", "Basic x"),
            ("transfer-encoding", "chunked"),
            ("trailer", "x-late"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept"]);
    }

    #[test]
    fn the_hop_by_hop_match_and_list_agree() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name.as_str()), "{name}");
        }
        for name in [
            "upgrade",
            "accept",
            "cookie",
            "host",
            "te-x",
            "x-connection",
        ] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
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
            Some(&ip_value("203.0.113.9".parse().unwrap())),
            &nets(&["10.0.0.0/8"]),
            false,
            Some(HeaderValue::from_static("app.test")),
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
            Some(&ip_value("10.0.0.1".parse().unwrap())),
            &nets(&["10.0.0.0/8"]),
            false,
            Some(HeaderValue::from_static("app.test")),
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
