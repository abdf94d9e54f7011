//! The JSON bodies of Kernia's sign-in and sign-up routes, normalized.
//!
//! Kernia 0.1.0 stores emails as given at sign-up and compares them byte for
//! byte at sign-in (reference §7, bug 7), so `Ada@Example.com` and
//! `ada@example.com` are two different people to it. cutover puts every
//! identifier in one form on the way in — email trimmed and lower-cased,
//! username lower-cased, phone number in E.164 — on sign-ups and sign-ins
//! alike, which is also the form `cutover import` writes. A user who signed up
//! through cutover can therefore always sign in through it, whatever case they
//! type.

use bytes::Bytes;
use serde_json::Value;

/// Which route, relative to Kernia's base path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRoute {
    SignInEmail,
    SignInUsername,
    SignInPhone,
    SignUpEmail,
    SignUpUsername,
    ResetPassword,
    PhoneResetPassword,
}

impl AuthRoute {
    /// The route for a normalized path below the base path, e.g. `/sign-in/email`.
    pub fn from_path(rel: &str) -> Option<AuthRoute> {
        Some(match rel {
            "/sign-in/email" => AuthRoute::SignInEmail,
            "/sign-in/username" => AuthRoute::SignInUsername,
            "/sign-in/phone-number" => AuthRoute::SignInPhone,
            "/sign-up/email" => AuthRoute::SignUpEmail,
            "/sign-up/username" => AuthRoute::SignUpUsername,
            "/reset-password" => AuthRoute::ResetPassword,
            "/phone-number/reset-password" => AuthRoute::PhoneResetPassword,
            _ => return None,
        })
    }
}

/// The identifier a body names, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    Email(String),
    Username(String),
    Phone(String),
}

/// A parsed, normalized body.
#[derive(Clone)]
pub struct AuthBody {
    /// What to forward: the client's bytes, or the re-serialized normalized JSON.
    pub bytes: Bytes,
    pub identifier: Option<Identifier>,
    /// The password, for sign-ins (never logged: no `Debug`).
    pub password: Option<String>,
    /// The reset token, for `/reset-password`.
    pub reset_token: Option<String>,
}

impl std::fmt::Debug for AuthBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthBody")
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}

pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// E.164 as far as it can be known without a country: separators dropped, a
/// leading `00` turned into `+`.
pub fn normalize_phone(raw: &str) -> String {
    let kept: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '/' | '\u{a0}'))
        .collect();
    match kept.strip_prefix("00") {
        Some(rest) if !kept.starts_with('+') => format!("+{rest}"),
        _ => kept,
    }
}

/// Parse and normalize. A body that is not a JSON object is forwarded as it
/// came (Kernia answers it); `None` fields stay `None`.
pub fn parse(route: AuthRoute, raw: Bytes) -> AuthBody {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&raw) else {
        return AuthBody {
            bytes: raw,
            identifier: None,
            password: None,
            reset_token: None,
        };
    };
    let mut changed = false;
    let mut normalize = |key: &str, f: fn(&str) -> String| -> Option<String> {
        let value = map.get(key)?.as_str()?;
        let normal = f(value);
        if normal != value {
            map.insert(key.to_string(), Value::String(normal.clone()));
            changed = true;
        }
        Some(normal)
    };
    let identifier = match route {
        AuthRoute::SignInEmail | AuthRoute::SignUpEmail => {
            normalize("email", normalize_email).map(Identifier::Email)
        }
        AuthRoute::SignInUsername => {
            normalize("username", normalize_username).map(Identifier::Username)
        }
        AuthRoute::SignUpUsername => {
            normalize("email", normalize_email);
            normalize("username", normalize_username).map(Identifier::Username)
        }
        AuthRoute::SignInPhone | AuthRoute::PhoneResetPassword => {
            normalize("phone_number", normalize_phone).map(Identifier::Phone)
        }
        AuthRoute::ResetPassword => None,
    };
    let password = match route {
        AuthRoute::SignInEmail | AuthRoute::SignInUsername | AuthRoute::SignInPhone => map
            .get("password")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let reset_token = match route {
        AuthRoute::ResetPassword => map.get("token").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let bytes = if changed {
        Bytes::from(Value::Object(map).to_string())
    } else {
        raw
    };
    AuthBody {
        bytes,
        identifier,
        password,
        reset_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(b: &AuthBody) -> Value {
        serde_json::from_slice(&b.bytes).unwrap()
    }

    #[test]
    fn sign_in_emails_are_trimmed_and_lower_cased_in_the_forwarded_body() {
        let b = parse(
            AuthRoute::SignInEmail,
            Bytes::from_static(
                br#"{"email":"  Ada@Example.COM ","password":"Pw 1 ","rememberMe":false}"#,
            ),
        );
        assert_eq!(
            b.identifier,
            Some(Identifier::Email("ada@example.com".into()))
        );
        assert_eq!(
            b.password.as_deref(),
            Some("Pw 1 "),
            "passwords are never touched"
        );
        let v = json(&b);
        assert_eq!(v["email"], "ada@example.com");
        assert_eq!(v["rememberMe"], false);
    }

    #[test]
    fn an_already_normal_body_is_forwarded_byte_for_byte() {
        let raw = Bytes::from_static(br#"{"email":"ada@example.com","password":"x"}"#);
        let b = parse(AuthRoute::SignInEmail, raw.clone());
        assert_eq!(b.bytes, raw);
    }

    #[test]
    fn usernames_and_sign_up_emails() {
        let b = parse(
            AuthRoute::SignUpUsername,
            Bytes::from_static(br#"{"username":"Ada_L","email":"A@B.C","password":"p"}"#),
        );
        assert_eq!(b.identifier, Some(Identifier::Username("ada_l".into())));
        assert_eq!(json(&b)["email"], "a@b.c");
        assert_eq!(b.password, None, "sign-ups are not verified");
    }

    #[test]
    fn phone_numbers_become_e164() {
        assert_eq!(normalize_phone(" +1 (415) 555-0100 "), "+14155550100");
        assert_eq!(normalize_phone("0044 20 7946 0958"), "+442079460958");
        let b = parse(
            AuthRoute::SignInPhone,
            Bytes::from_static(br#"{"phone_number":"+1 415 555 0100","password":"p"}"#),
        );
        assert_eq!(b.identifier, Some(Identifier::Phone("+14155550100".into())));
    }

    #[test]
    fn non_json_bodies_pass_untouched() {
        let raw = Bytes::from_static(b"email=a%40b.c&password=x");
        let b = parse(AuthRoute::SignInEmail, raw.clone());
        assert_eq!(b.bytes, raw);
        assert_eq!(b.identifier, None);
    }

    #[test]
    fn reset_tokens_are_read() {
        let b = parse(
            AuthRoute::ResetPassword,
            Bytes::from_static(br#"{"token":"abc","password":"new-password"}"#),
        );
        assert_eq!(b.reset_token.as_deref(), Some("abc"));
    }
}
