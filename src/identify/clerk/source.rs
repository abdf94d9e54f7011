//! Where a Clerk session token travels, and which one a request carries.
//!
//! Pure code over an [`http::HeaderMap`]; nothing here allocates on the request
//! path (tokens are borrowed from the headers). The rules are Clerk's
//! (`reference/clerk.md` §1.6):
//!
//! 1. `Authorization: Bearer <jwt>` — or a scheme-less value, which Clerk's
//!    `parseAuthorizationHeader` also takes as the token; other schemes are
//!    ignored. When a header token exists, cookies are not looked at.
//! 2. Otherwise the `__session_<suffix>` cookie (suffix from the publishable
//!    key), falling back to `__session`; each goes with its own `__client_uat`.
//!
//! **Suffixed or unsuffixed** — a simplification of Clerk's `usesSuffixedCookies()`:
//! the suffixed pair is used when `__session_<suffix>` is present and either
//! `__client_uat_<suffix>` is present too or there is no `__session` at all;
//! otherwise the unsuffixed pair. Clerk also peeks into the unsuffixed token
//! (its `iss` and `iat`) and compares the two `__client_uat` values to pick a
//! side when several apps share a domain. We do not: both sides are verified
//! in full anyway (a token of another instance fails the exact `iss` check),
//! so the only difference is which of two genuine tokens of this instance is
//! read in that rare state, and the suffixed one is what current clerk-js
//! writes and reads first.
//!
//! A cookie name given twice (two domains or paths) counts at its first
//! occurrence, as the `cookie` parser Clerk's SDK uses does.

use base64::Engine as _;
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use sha1::{Digest as _, Sha1};

const SESSION: &str = "__session";
const CLIENT_UAT: &str = "__client_uat";

/// The cookie suffix of a Clerk instance (`getCookieSuffix`): standard base64
/// of SHA-1 over the publishable key string, `+`→`-`, `/`→`_`, first 8 characters.
pub fn cookie_suffix(publishable_key: &str) -> String {
    let digest = Sha1::digest(publishable_key.as_bytes());
    base64::engine::general_purpose::STANDARD
        .encode(digest)
        .chars()
        .take(8)
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// The names of the cookies this Clerk instance's session lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkCookieNames {
    suffixed_session: Option<String>,
    suffixed_client_uat: Option<String>,
}

impl ClerkCookieNames {
    /// Without a publishable key only the unsuffixed names are known.
    pub fn new(publishable_key: Option<&str>) -> Self {
        let suffix = publishable_key.map(cookie_suffix);
        ClerkCookieNames {
            suffixed_session: suffix.as_ref().map(|s| format!("{SESSION}_{s}")),
            suffixed_client_uat: suffix.as_ref().map(|s| format!("{CLIENT_UAT}_{s}")),
        }
    }

    /// `__session`.
    pub fn session(&self) -> &str {
        SESSION
    }

    /// `__client_uat`.
    pub fn client_uat(&self) -> &str {
        CLIENT_UAT
    }

    /// `__session_<suffix>`, when the publishable key is configured.
    pub fn suffixed_session(&self) -> Option<&str> {
        self.suffixed_session.as_deref()
    }

    /// `__client_uat_<suffix>`, when the publishable key is configured.
    pub fn suffixed_client_uat(&self) -> Option<&str> {
        self.suffixed_client_uat.as_deref()
    }
}

/// Whether a cookie belongs to Clerk (any instance): the session and
/// client_uat cookies with or without suffix, the development-browser, refresh
/// and handshake cookies, and `__client` (FAPI's own; only seen on the app's
/// domain in FAPI proxy mode). The proxy can use this to keep Clerk's cookies
/// away from the Kernia side.
pub fn is_clerk_cookie(name: &str) -> bool {
    const EXACT: [&str; 8] = [
        SESSION,
        CLIENT_UAT,
        "__client",
        "__clerk_db_jwt",
        "__dev_session",
        "__clerk_handshake",
        "__clerk_handshake_nonce",
        "__clerk_redirect_count",
    ];
    const FAMILIES: [&str; 4] = [
        "__session_",
        "__client_uat_",
        "__clerk_db_jwt_",
        "__refresh_",
    ];
    EXACT.contains(&name) || FAMILIES.iter().any(|prefix| name.starts_with(prefix))
}

/// The token a request carries, borrowed from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenSource<'a> {
    None,
    /// From `Authorization`: the `__client_uat` rule does not apply.
    Header(&'a str),
    /// From a session cookie, with the matching `__client_uat` parsed: `None`
    /// when missing; a value that is not a number counts as `0` (signed out),
    /// as Clerk's `parseInt(…) || 0` does.
    Cookie {
        token: &'a str,
        client_uat: Option<u64>,
    },
}

/// Finds the token of a request (see the module docs for the order).
pub(crate) fn token_source<'a>(
    headers: &'a HeaderMap,
    names: &ClerkCookieNames,
) -> TokenSource<'a> {
    if let Some(token) = authorization_token(headers) {
        return TokenSource::Header(token);
    }
    let jar = SessionCookies::read(headers, names);
    let suffixed = jar
        .suffixed_session
        .filter(|_| jar.suffixed_client_uat.is_some() || jar.session.is_none());
    let (token, client_uat) = match (suffixed, jar.session) {
        (Some(token), _) => (token, jar.suffixed_client_uat),
        (None, Some(token)) => (token, jar.client_uat),
        (None, None) => return TokenSource::None,
    };
    TokenSource::Cookie {
        token,
        client_uat: client_uat.map(|raw| raw.parse().unwrap_or(0)),
    }
}

/// `Authorization: Bearer <token>` (scheme case-insensitive, as RFC 7235 has
/// it) or a scheme-less `Authorization: <token>`.
fn authorization_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    match value.split_once(' ') {
        // A bare scheme is no token (Clerk would take the word `Bearer` itself).
        None => (!value.is_empty() && !value.eq_ignore_ascii_case("bearer")).then_some(value),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = rest.trim();
            (!token.is_empty()).then_some(token)
        }
        Some(_) => None,
    }
}

/// The four cookies that matter, first occurrence of each, empty values ignored.
#[derive(Debug, Default)]
struct SessionCookies<'a> {
    session: Option<&'a str>,
    client_uat: Option<&'a str>,
    suffixed_session: Option<&'a str>,
    suffixed_client_uat: Option<&'a str>,
}

impl<'a> SessionCookies<'a> {
    fn read(headers: &'a HeaderMap, names: &ClerkCookieNames) -> Self {
        let mut jar = SessionCookies::default();
        let pairs = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.split_once('='));
        for (name, value) in pairs {
            let name = name.trim();
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.is_empty() {
                continue;
            }
            let slot = if name == SESSION {
                &mut jar.session
            } else if name == CLIENT_UAT {
                &mut jar.client_uat
            } else if Some(name) == names.suffixed_session() {
                &mut jar.suffixed_session
            } else if Some(name) == names.suffixed_client_uat() {
                &mut jar.suffixed_client_uat
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        jar
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const PK: &str = "pk_test_Y2xlcmsuY2xlcmsuZGV2JA";

    fn headers(pairs: &[(&http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn source(pairs: &[(&http::HeaderName, &str)]) -> TokenSource<'static> {
        let h = Box::leak(Box::new(headers(pairs)));
        token_source(h, &ClerkCookieNames::new(Some(PK)))
    }

    #[test]
    fn cookie_suffix_matches_clerks_test_vectors() {
        assert_eq!(cookie_suffix("pk_test_Y2xlcmsuY2xlcmsuZGV2JA"), "QvfNY2dr");
        assert_eq!(
            cookie_suffix("pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ="),
            "qReyu04C"
        );
    }

    #[test]
    fn bearer_and_scheme_less_authorization_are_tokens_other_schemes_are_not() {
        assert_eq!(
            source(&[(&AUTHORIZATION, "Bearer a.b.c")]),
            TokenSource::Header("a.b.c")
        );
        assert_eq!(
            source(&[(&AUTHORIZATION, "bearer  a.b.c ")]),
            TokenSource::Header("a.b.c")
        );
        assert_eq!(
            source(&[(&AUTHORIZATION, "a.b.c")]),
            TokenSource::Header("a.b.c")
        );
        assert_eq!(
            source(&[(&AUTHORIZATION, "Basic dXNlcjpwdw==")]),
            TokenSource::None
        );
        assert_eq!(source(&[(&AUTHORIZATION, "Bearer ")]), TokenSource::None);
    }

    #[test]
    fn a_header_token_wins_and_cookies_are_then_ignored() {
        let s = source(&[
            (&AUTHORIZATION, "Bearer from.the.header"),
            (&COOKIE, "__session=from.the.cookie; __client_uat=0"),
        ]);
        assert_eq!(s, TokenSource::Header("from.the.header"));
    }

    #[test]
    fn another_scheme_falls_through_to_cookies() {
        let s = source(&[
            (&AUTHORIZATION, "Basic dXNlcjpwdw=="),
            (&COOKIE, "__session=c.o.ok; __client_uat=17"),
        ]);
        assert_eq!(
            s,
            TokenSource::Cookie {
                token: "c.o.ok",
                client_uat: Some(17)
            }
        );
    }

    #[test]
    fn suffixed_cookies_are_preferred_with_their_own_client_uat() {
        let s = source(&[(
            &COOKIE,
            "__session=plain; __client_uat=5; __session_QvfNY2dr=suffixed; __client_uat_QvfNY2dr=9",
        )]);
        assert_eq!(
            s,
            TokenSource::Cookie {
                token: "suffixed",
                client_uat: Some(9)
            }
        );
    }

    #[test]
    fn suffixed_session_without_its_client_uat_falls_back_to_the_unsuffixed_pair() {
        let s = source(&[(
            &COOKIE,
            "__session_QvfNY2dr=suffixed; __session=plain; __client_uat=5",
        )]);
        assert_eq!(
            s,
            TokenSource::Cookie {
                token: "plain",
                client_uat: Some(5)
            }
        );
        // Nothing to fall back to: the suffixed token is used (and then fails the uat rule).
        let s = source(&[(&COOKIE, "__session_QvfNY2dr=suffixed; __client_uat=5")]);
        assert_eq!(
            s,
            TokenSource::Cookie {
                token: "suffixed",
                client_uat: None
            }
        );
    }

    #[test]
    fn unsuffixed_cookies_and_the_other_instances_suffix() {
        let s = source(&[(
            &COOKIE,
            "__session_OTHERxxx=x; __session=plain; __client_uat=0",
        )]);
        assert_eq!(
            s,
            TokenSource::Cookie {
                token: "plain",
                client_uat: Some(0)
            }
        );
        assert_eq!(
            source(&[(&COOKIE, "theme=dark; __session=")]),
            TokenSource::None
        );
        assert_eq!(source(&[]), TokenSource::None);
    }

    #[test]
    fn client_uat_that_is_not_a_number_counts_as_signed_out_and_first_occurrence_wins() {
        let s = source(&[(&COOKIE, "__session=t; __client_uat=abc")]);
        assert_eq!(
            s,
            TokenSource::Cookie {
                token: "t",
                client_uat: Some(0)
            }
        );
        let s = source(&[
            (&COOKIE, "__session=t; __client_uat=0"),
            (&COOKIE, "__client_uat=99"),
        ]);
        assert_eq!(
            s,
            TokenSource::Cookie {
                token: "t",
                client_uat: Some(0)
            }
        );
        let s = source(&[(&COOKIE, "__session=\"q.u.oted\"; __client_uat=\"7\"")]);
        assert_eq!(
            s,
            TokenSource::Cookie {
                token: "q.u.oted",
                client_uat: Some(7)
            }
        );
    }

    #[test]
    fn without_a_publishable_key_only_unsuffixed_names_exist() {
        let names = ClerkCookieNames::new(None);
        assert_eq!(names.suffixed_session(), None);
        let h = headers(&[(&COOKIE, "__session_QvfNY2dr=s; __client_uat_QvfNY2dr=1")]);
        assert_eq!(token_source(&h, &names), TokenSource::None);
        let named = ClerkCookieNames::new(Some(PK));
        assert_eq!(named.suffixed_session(), Some("__session_QvfNY2dr"));
        assert_eq!(named.suffixed_client_uat(), Some("__client_uat_QvfNY2dr"));
    }

    #[test]
    fn clerk_cookies_are_recognised_by_name() {
        for name in [
            "__session",
            "__session_QvfNY2dr",
            "__client_uat",
            "__client_uat_qReyu04C",
            "__client",
            "__clerk_db_jwt",
            "__clerk_db_jwt_QvfNY2dr",
            "__refresh_QvfNY2dr",
            "__clerk_handshake",
            "__clerk_redirect_count",
        ] {
            assert!(is_clerk_cookie(name), "{name}");
        }
        for name in [
            "better-auth.session_token",
            "session",
            "__client_id",
            "cutover_route",
        ] {
            assert!(!is_clerk_cookie(name), "{name}");
        }
    }
}
