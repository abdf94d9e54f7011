//! Reading cookies from request headers.
//!
//! A browser sends one `Cookie` header on HTTP/1.1, but HTTP/2 lets it split
//! cookies over several; both are read. Values are returned as they are sent
//! (no percent-decoding: neither Clerk's JWTs nor Kernia's tokens use it).

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
}
