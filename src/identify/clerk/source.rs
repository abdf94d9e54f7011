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
//! **Suffixed or unsuffixed** — as `@clerk/backend`'s `shouldUseSuffixed()`
//! (`tokens/authenticateContext.ts`) decides, peeking (unverified) into the
//! two session tokens' `iss`, `iat` and `exp`; whichever is picked is then
//! verified in full:
//! 1. an unsuffixed `__session` without `iss` (or not a JWT) → unsuffixed;
//! 2. an unsuffixed `__session` of another instance (`iss` without scheme ≠
//!    the Frontend API host of the publishable key) → suffixed;
//! 3. no suffixed `__session` and no suffixed `__client_uat` → unsuffixed;
//! 4. neither `__client_uat` is `0` and the unsuffixed token's `iat` is newer
//!    → unsuffixed (so a garbage suffixed cookie, which has no `iat`, next to
//!    a valid unsuffixed one does not sign the user out);
//! 5. suffixed `__client_uat` is `0` but the unsuffixed one is not → unsuffixed;
//! 6. development instances (`pk_test_`): suffixed `__client_uat` not `0`,
//!    unsuffixed `0` and the suffixed token expired → unsuffixed;
//! 7. a suffixed `__session` without a suffixed `__client_uat` → unsuffixed;
//! 8. otherwise suffixed.
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
    /// The Frontend API host named by the publishable key (a token's `iss`
    /// without its scheme, for this instance).
    frontend_api: Option<String>,
    /// `pk_live_` (production) rather than `pk_test_`.
    production: bool,
}

impl ClerkCookieNames {
    /// Without a publishable key only the unsuffixed names are known.
    pub fn new(publishable_key: Option<&str>) -> Self {
        let suffix = publishable_key.map(cookie_suffix);
        ClerkCookieNames {
            suffixed_session: suffix.as_ref().map(|s| format!("{SESSION}_{s}")),
            suffixed_client_uat: suffix.as_ref().map(|s| format!("{CLIENT_UAT}_{s}")),
            frontend_api: publishable_key.and_then(crate::config::frontend_api_host),
            production: publishable_key.is_some_and(|k| k.starts_with("pk_live_")),
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

/// Finds the token of a request (see the module docs for the order) at
/// `now` (Unix seconds).
pub(crate) fn token_source<'a>(
    headers: &'a HeaderMap,
    names: &ClerkCookieNames,
    now: u64,
) -> TokenSource<'a> {
    if let Some(token) = authorization_token(headers) {
        return TokenSource::Header(token);
    }
    let jar = SessionCookies::read(headers, names);
    let (token, client_uat) = if use_suffixed(&jar, names, now) {
        (jar.suffixed_session, jar.suffixed_client_uat)
    } else {
        (jar.session, jar.client_uat)
    };
    match token {
        Some(token) => TokenSource::Cookie {
            token,
            client_uat: client_uat.map(|raw| raw.parse().unwrap_or(0)),
        },
        None => TokenSource::None,
    }
}

/// `shouldUseSuffixed()` of `@clerk/backend`, step by step (module docs).
fn use_suffixed(jar: &SessionCookies<'_>, names: &ClerkCookieNames, now: u64) -> bool {
    let Some(frontend_api) = names.frontend_api.as_deref() else {
        return false;
    };
    let session = jar.session.map(Peek::of);
    let suffixed = jar.suffixed_session.map(Peek::of);
    if let Some(peek) = &session {
        match &peek.iss {
            None => return false,
            Some(iss) if strip_scheme(iss) != frontend_api => return true,
            Some(_) => {}
        }
    }
    if jar.suffixed_client_uat.is_none() && jar.suffixed_session.is_none() {
        return false;
    }
    let session_iat = session.as_ref().and_then(|p| p.iat).unwrap_or(0.0);
    let suffixed_iat = suffixed.as_ref().and_then(|p| p.iat).unwrap_or(0.0);
    let suffixed_uat_zero = jar.suffixed_client_uat == Some("0");
    let uat_zero = jar.client_uat == Some("0");
    if !suffixed_uat_zero && !uat_zero && session_iat > suffixed_iat {
        return false;
    }
    if suffixed_uat_zero && !uat_zero {
        return false;
    }
    if !names.production
        && !suffixed_uat_zero
        && uat_zero
        && suffixed
            .as_ref()
            .and_then(|p| p.exp)
            .is_some_and(|exp| exp <= now as f64)
    {
        return false;
    }
    if jar.suffixed_client_uat.is_none() && jar.suffixed_session.is_some() {
        return false;
    }
    true
}

/// `iss` without `http://` or `https://` (any case), as Clerk compares it.
fn strip_scheme(iss: &str) -> &str {
    for scheme in ["https://", "http://"] {
        if iss.len() >= scheme.len() && iss[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return &iss[scheme.len()..];
        }
    }
    iss
}

/// What Clerk's `decodeJwt` reads from a token before any verification:
/// only used to choose between two cookies, never to sign anyone in.
#[derive(Debug, Default)]
struct Peek {
    iss: Option<String>,
    iat: Option<f64>,
    exp: Option<f64>,
}

impl Peek {
    /// A token that is not three base64url parts with JSON header and
    /// payload peeks as empty (no `iss`, `iat` 0), as a decode error does.
    fn of(token: &str) -> Peek {
        #[derive(serde::Deserialize)]
        struct Payload {
            iss: Option<serde_json::Value>,
            iat: Option<serde_json::Value>,
            exp: Option<serde_json::Value>,
        }
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Peek::default();
        };
        let decode = |part: &str| engine.decode(part.trim_end_matches('=')).ok();
        let header_ok = decode(header)
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v.is_object());
        let Some(payload) = decode(payload)
            .and_then(|b| serde_json::from_slice::<Payload>(&b).ok())
            .filter(|_| header_ok)
        else {
            return Peek::default();
        };
        Peek {
            // Clerk tests `!!payload.iss`: an empty string is no issuer.
            iss: match payload.iss {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
                _ => None,
            },
            iat: payload.iat.and_then(|v| v.as_f64()),
            exp: payload.exp.and_then(|v| v.as_f64()),
        }
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

    const NOW: u64 = 1_800_000_000;

    fn source(pairs: &[(&http::HeaderName, &str)]) -> TokenSource<'static> {
        let h = Box::leak(Box::new(headers(pairs)));
        token_source(h, &ClerkCookieNames::new(Some(PK)), NOW)
    }

    /// An unsigned JWT-shaped token with this payload (only peeked at here).
    fn jwt(payload: serde_json::Value) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            e.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            e.encode(payload.to_string())
        )
    }

    /// A token of this instance (`PK` names `clerk.clerk.dev`) issued at `iat`.
    fn ours(iat: u64) -> String {
        jwt(
            serde_json::json!({"iss": "https://clerk.clerk.dev", "iat": iat, "exp": iat + 60, "sub": "user_1"}),
        )
    }

    fn cookie_token(s: &TokenSource<'_>) -> Option<String> {
        match s {
            TokenSource::Cookie { token, .. } => Some(token.to_string()),
            _ => None,
        }
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
        let (plain, suffixed) = (ours(NOW - 30), ours(NOW - 10));
        let h = format!(
            "__session={plain}; __client_uat=5; __session_QvfNY2dr={suffixed}; __client_uat_QvfNY2dr=9"
        );
        let s = source(&[(&COOKIE, &h)]);
        assert_eq!(cookie_token(&s).as_deref(), Some(suffixed.as_str()));
        assert!(matches!(
            s,
            TokenSource::Cookie {
                client_uat: Some(9),
                ..
            }
        ));
    }

    #[test]
    fn a_garbage_suffixed_cookie_does_not_hide_a_valid_unsuffixed_one() {
        let plain = ours(NOW - 10);
        for garbage in ["garbage", "a.b.c", "", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"] {
            let h = format!(
                "__session_QvfNY2dr={garbage}; __client_uat_QvfNY2dr=7; __session={plain}; __client_uat=7"
            );
            let s = source(&[(&COOKIE, &h)]);
            assert_eq!(
                cookie_token(&s).as_deref(),
                Some(plain.as_str()),
                "{garbage}"
            );
        }
    }

    #[test]
    fn clerks_choice_between_suffixed_and_unsuffixed() {
        let pick = |cookie: String| cookie_token(&source(&[(&COOKIE, &cookie)]));
        let (old, new) = (ours(NOW - 50), ours(NOW - 5));
        // Another instance's unsuffixed token: trust the suffixed one.
        let other = jwt(serde_json::json!({"iss": "https://clerk.other.dev", "iat": NOW}));
        assert_eq!(
            pick(format!(
                "__session={other}; __client_uat=1; __session_QvfNY2dr={old}; __client_uat_QvfNY2dr=1"
            )),
            Some(old.clone())
        );
        // An unsuffixed token without iss: unsuffixed (then signed out).
        let no_iss = jwt(serde_json::json!({"iat": NOW}));
        assert_eq!(
            pick(format!(
                "__session={no_iss}; __client_uat=1; __session_QvfNY2dr={new}; __client_uat_QvfNY2dr=1"
            )),
            Some(no_iss.clone())
        );
        // Both signed in, unsuffixed newer: unsuffixed; older: suffixed.
        assert_eq!(
            pick(format!(
                "__session={new}; __client_uat=1; __session_QvfNY2dr={old}; __client_uat_QvfNY2dr=1"
            )),
            Some(new.clone())
        );
        assert_eq!(
            pick(format!(
                "__session={old}; __client_uat=1; __session_QvfNY2dr={new}; __client_uat_QvfNY2dr=1"
            )),
            Some(new.clone())
        );
        // Suffixed signed out, unsuffixed signed in: unsuffixed.
        assert_eq!(
            pick(format!(
                "__session={old}; __client_uat=1; __session_QvfNY2dr={new}; __client_uat_QvfNY2dr=0"
            )),
            Some(old.clone())
        );
        // Development: suffixed signed in but expired, unsuffixed signed out: unsuffixed.
        let expired = ours(NOW - 600);
        assert_eq!(
            pick(format!(
                "__session={new}; __client_uat=0; __session_QvfNY2dr={expired}; __client_uat_QvfNY2dr=1"
            )),
            Some(new.clone())
        );
        // … but not when the suffixed token is still fresh.
        assert_eq!(
            pick(format!(
                "__session={old}; __client_uat=0; __session_QvfNY2dr={new}; __client_uat_QvfNY2dr=1"
            )),
            Some(new.clone())
        );
    }

    #[test]
    fn suffixed_session_without_its_client_uat_falls_back_to_the_unsuffixed_pair() {
        let (plain, suffixed) = (ours(NOW - 30), ours(NOW - 10));
        let h = format!("__session_QvfNY2dr={suffixed}; __session={plain}; __client_uat=5");
        let s = source(&[(&COOKIE, &h)]);
        assert_eq!(cookie_token(&s).as_deref(), Some(plain.as_str()));
        assert!(matches!(
            s,
            TokenSource::Cookie {
                client_uat: Some(5),
                ..
            }
        ));
        // Unsuffixed has no token: signed out, as Clerk has it (a uat but no session).
        let h = format!("__session_QvfNY2dr={suffixed}; __client_uat=5");
        assert_eq!(source(&[(&COOKIE, &h)]), TokenSource::None);
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
        assert_eq!(token_source(&h, &names, NOW), TokenSource::None);
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
