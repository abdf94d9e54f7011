//! Reading cookies from request headers.
//!
//! A browser sends one `Cookie` header on HTTP/1.1, but HTTP/2 lets it split
//! cookies over several; both are read, in order (cutover joins them into one
//! header for the upstream, so the app reads the same list). Values are
//! returned as they are sent (no percent-decoding: neither Clerk's JWTs nor
//! Kernia's tokens use it).
//!
//! A cookie name may appear twice (two paths or domains, or a client that
//! wants to confuse a proxy). Whoever reads a cookie must read it the way the
//! server that honours it does, or the proxy and the server disagree about
//! who is signed in: [`get`] takes the first occurrence with quotes stripped
//! (the `cookie` package that JavaScript servers use), [`get_last_raw`] the
//! last occurrence as it is (Kernia's `parse_cookie_header`).

use http::HeaderMap;

/// Every `name=value` pair of every `Cookie` header, in order.
pub fn all(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.trim(), value.trim().trim_matches('"')))
        })
}

/// The first cookie called `name`.
pub fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    all(headers).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The last cookie called `name`, quotes kept, as Kernia reads it: split at
/// `;`, skip pieces without `=`, split at the first `=`, trim both sides, a
/// later name overwrites an earlier one.
pub fn get_last_raw<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n.trim() == name).then(|| v.trim())
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_split_and_joined_cookie_headers() {
        let mut h = HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; b=2".parse().unwrap());
        h.append(http::header::COOKIE, "c=\"3\"".parse().unwrap());
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "c"), Some("3"));
        assert_eq!(get(&h, "d"), None);
        assert_eq!(all(&h).count(), 3);
    }

    #[test]
    fn kernias_reading_takes_the_last_value_with_its_quotes() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "s=first; x; s = \"second\" ".parse().unwrap(),
        );
        assert_eq!(get_last_raw(&h, "s"), Some("\"second\""));
        h.append(http::header::COOKIE, "s=third".parse().unwrap());
        assert_eq!(get_last_raw(&h, "s"), Some("third"));
        assert_eq!(get(&h, "s"), Some("first"));
        assert_eq!(get_last_raw(&h, "x"), None);
    }
}
