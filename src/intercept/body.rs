//! The JSON bodies of Kernia's sign-in, sign-up and reset routes, read the
//! way Kernia reads them, and rewritten so Kernia reads exactly what cutover
//! read.
//!
//! How Kernia 0.1.0 reads a body (its router's `_construct_body`): Python's
//! `json.loads` (duplicate keys: the last value wins, in the first key's
//! place), then for the *dataclass* bodies of the email-and-password and
//! username routes every key is matched to a field by its exact name, or else
//! by its camelCase-to-snake_case form, so `Email`, `EMAIL` and `email` all
//! fill `email` (an exact key wins; among aliases the first in the body wins).
//! The *Pydantic* bodies of the phone-number routes take exact snake_case
//! names only — which the Better Auth JS client does not send
//! (`phoneNumber`, `newPassword`).
//!
//! cutover reads each field Kernia would, by the same rule (and for the
//! phone routes and `/reset-password` also by the names the Better Auth
//! client uses), puts the identifier in its one form
//! ([`crate::identifier`]), and forwards a *rewritten* body holding each
//! field under the one name Kernia reads, every alias removed. So Kernia can
//! never see an identifier cutover did not: `{"Email":"BOB@x.com"}` reaches
//! it as `{"email":"bob@x.com"}`.
//!
//! What cutover cannot read it refuses ([`Unreadable`], answered `400`):
//! bytes that are not a JSON object to serde (Python also takes `NaN`,
//! `Infinity`, `1e400` and nesting deeper than serde's limit of 128), and an
//! identifier, password or token that is not a string. Forwarding those raw
//! would let a sign-in skip migration, normalization and throttling.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap as _, Serializer};
use serde_json::Value;

use super::routes::AuthRoute;
use crate::identifier;
use crate::secret::Secret;

/// The identifier a body names, in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    Email(String),
    Username(String),
    Phone(String),
}

/// A body as intercept needs it.
#[derive(Debug, Clone)]
pub struct AuthBody {
    /// What to forward: the rewritten JSON object.
    pub bytes: Bytes,
    pub identifier: Option<Identifier>,
    /// The password, for sign-ins.
    pub password: Option<Secret>,
    /// The reset token, for `/reset-password`.
    pub reset_token: Option<Secret>,
}

/// A body cutover cannot read, with what is wrong (never a value from it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// Which of Kernia's two body readers a route uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Model {
    /// Dataclasses: Kernia maps camelCase keys onto snake_case fields itself.
    Dataclass,
    /// Pydantic: exact snake_case names only; cutover maps the rest.
    Pydantic,
}

/// Read and rewrite the body of `route`.
pub fn parse(route: AuthRoute, raw: &[u8]) -> Result<AuthBody, Unreadable> {
    let mut obj = Object::parse(raw)?;
    let model = match route {
        AuthRoute::SignInPhone | AuthRoute::PhoneResetPassword | AuthRoute::PhoneNumber => {
            Model::Pydantic
        }
        _ => Model::Dataclass,
    };
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut take_string = |obj: &mut Object,
                           field: &'static str,
                           extra: &[&str],
                           normal: Option<fn(&str) -> String>|
     -> Result<Option<String>, Unreadable> {
        let Some(value) = obj.take(field, extra) else {
            return Ok(None);
        };
        let Value::String(s) = value else {
            return Err(Unreadable(format!("`{field}` must be a string")));
        };
        let s = match normal {
            Some(f) => f(&s),
            None => s,
        };
        out.push((field.to_string(), Value::String(s.clone())));
        Ok(Some(s))
    };
    let email = Some(identifier::email as fn(&str) -> String);
    let username = Some(identifier::username as fn(&str) -> String);
    let phone = Some(identifier::phone as fn(&str) -> String);
    let mut identifier = None;
    let mut password = None;
    let mut reset_token = None;
    match route {
        AuthRoute::SignInEmail => {
            identifier = take_string(&mut obj, "email", &[], email)?.map(Identifier::Email);
            password = take_string(&mut obj, "password", &[], None)?;
        }
        AuthRoute::SignInUsername => {
            identifier =
                take_string(&mut obj, "username", &[], username)?.map(Identifier::Username);
            password = take_string(&mut obj, "password", &[], None)?;
        }
        AuthRoute::SignInPhone => {
            identifier = take_string(&mut obj, "phone_number", &[], phone)?.map(Identifier::Phone);
            password = take_string(&mut obj, "password", &[], None)?;
        }
        AuthRoute::SignUpEmail | AuthRoute::ForgetPassword | AuthRoute::RequestPasswordReset => {
            identifier = take_string(&mut obj, "email", &[], email)?.map(Identifier::Email);
        }
        AuthRoute::SignUpUsername => {
            take_string(&mut obj, "email", &[], email)?;
            identifier =
                take_string(&mut obj, "username", &[], username)?.map(Identifier::Username);
        }
        AuthRoute::ResetPassword => {
            reset_token = take_string(&mut obj, "token", &[], None)?;
            // The Better Auth client sends `newPassword`; Kernia reads `password`.
            take_string(&mut obj, "password", &["newPassword", "new_password"], None)?;
        }
        AuthRoute::PhoneResetPassword | AuthRoute::PhoneNumber => {
            identifier = take_string(&mut obj, "phone_number", &[], phone)?.map(Identifier::Phone);
        }
        AuthRoute::SocialCallback | AuthRoute::SignOut => {}
    }
    for (key, value) in obj.rest() {
        let key = match model {
            Model::Dataclass => key,
            Model::Pydantic => {
                let snake = camel_to_snake(&key);
                if snake != key && !out.iter().any(|(k, _)| *k == snake) {
                    snake
                } else {
                    key
                }
            }
        };
        if !out.iter().any(|(k, _)| *k == key) {
            out.push((key, value));
        }
    }
    Ok(AuthBody {
        bytes: Bytes::from(write_object(&out)),
        identifier,
        password: password.map(Secret::new),
        reset_token: reset_token.map(Secret::new),
    })
}

/// A JSON object as Python's `json.loads` leaves it: keys in first-seen
/// order, a repeated key's last value in the first one's place.
struct Object {
    entries: Vec<Option<(String, Value)>>,
}

impl Object {
    fn parse(raw: &[u8]) -> Result<Object, Unreadable> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(Unreadable(
                "the body is empty; a JSON object is expected".into(),
            ));
        }
        match serde_json::from_slice::<Ordered>(raw) {
            Ok(Ordered(entries)) => Ok(Object {
                entries: entries.into_iter().map(Some).collect(),
            }),
            Err(e) => Err(Unreadable(format!(
                "the body is not a JSON object cutover can read ({e}); send plain JSON \
                 (no NaN or Infinity, numbers within double range, nesting under 128 levels)"
            ))),
        }
    }

    /// Remove and return `field` as Kernia's dataclass reader resolves it:
    /// the exact key; else the first key whose snake_case form is `field`;
    /// else the first of `extra`. Every key that names `field` is removed.
    fn take(&mut self, field: &str, extra: &[&str]) -> Option<Value> {
        let names_field = |k: &str| k == field || camel_to_snake(k) == field || extra.contains(&k);
        let exact = self.position(|k| k == field);
        let alias = || self.position(|k| camel_to_snake(k) == field);
        let extra_hit = || extra.iter().find_map(|name| self.position(|k| k == *name));
        let chosen = exact.or_else(alias).or_else(extra_hit);
        let value = chosen.and_then(|i| self.entries[i].take()).map(|(_, v)| v);
        for slot in &mut self.entries {
            if slot.as_ref().is_some_and(|(k, _)| names_field(k)) {
                *slot = None;
            }
        }
        value
    }

    fn position(&self, pred: impl Fn(&str) -> bool) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.as_ref().is_some_and(|(k, _)| pred(k)))
    }

    /// The keys not taken, in order.
    fn rest(self) -> impl Iterator<Item = (String, Value)> {
        self.entries.into_iter().flatten()
    }
}

/// Kernia's `_camel_to_snake`: before an upper-case letter that follows a
/// lower-case letter or a digit, an underscore; every upper-case letter
/// lower-cased. `userId` → `user_id`, `Email` and `EMAIL` → `email`.
fn camel_to_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev: Option<char> = None;
    for ch in name.chars() {
        if ch.is_uppercase() {
            if prev.is_some_and(|p| p.is_lowercase() || p.is_numeric()) {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
        prev = Some(ch);
    }
    out
}

fn write_object(entries: &[(String, Value)]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::new(&mut buf);
    // Writing strings and `Value`s into a Vec cannot fail.
    if let Ok(mut map) = ser.serialize_map(Some(entries.len())) {
        for (k, v) in entries {
            let _ = map.serialize_entry(k, v);
        }
        let _ = map.end();
    }
    buf
}

/// A top-level JSON object with its keys in order.
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries: Vec<(String, Value)> = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    match index.get(&k) {
                        Some(&i) => entries[i].1 = v,
                        None => {
                            index.insert(k.clone(), entries.len());
                            entries.push((k, v));
                        }
                    }
                }
                Ok(Ordered(entries))
            }
        }
        d.deserialize_map(V).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(route: AuthRoute, raw: &str) -> AuthBody {
        parse(route, raw.as_bytes()).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn json(b: &AuthBody) -> Value {
        serde_json::from_slice(&b.bytes).unwrap()
    }

    fn email_of(raw: &str) -> Option<Identifier> {
        read(AuthRoute::SignInEmail, raw).identifier
    }

    #[test]
    fn sign_in_emails_are_trimmed_and_lower_cased_in_the_forwarded_body() {
        let b = read(
            AuthRoute::SignInEmail,
            r#"{"email":"  Ada@Example.COM ","password":"Pw 1 ","rememberMe":false}"#,
        );
        assert_eq!(
            b.identifier,
            Some(Identifier::Email("ada@example.com".into()))
        );
        assert_eq!(
            b.password.as_ref().map(Secret::expose),
            Some("Pw 1 "),
            "passwords are never touched"
        );
        let v = json(&b);
        assert_eq!(v["email"], "ada@example.com");
        assert_eq!(v["rememberMe"], false);
    }

    #[test]
    fn key_spellings_kernia_maps_onto_email_are_read_and_replaced() {
        let bob = Some(Identifier::Email("bob@example.com".into()));
        for raw in [
            r#"{"Email":"BOB@EXAMPLE.COM","password":"p"}"#,
            r#"{"EMAIL":"Bob@example.COM","password":"p"}"#,
            // An exact key wins over an alias, wherever it stands (Kernia's rule).
            r#"{"Email":"eve@example.com","email":"Bob@Example.com","password":"p"}"#,
            // Among aliases, the first wins.
            r#"{"EMAIL":"bob@example.com","Email":"eve@example.com","password":"p"}"#,
            // A repeated key: the last value (json.loads).
            r#"{"email":"eve@example.com","email":"BOB@example.com","password":"p"}"#,
        ] {
            let b = read(AuthRoute::SignInEmail, raw);
            assert_eq!(b.identifier, bob, "{raw}");
            let v = json(&b);
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["email", "password"], "{raw}: every alias is gone");
            assert_eq!(v["email"], "bob@example.com");
        }
        let b = read(
            AuthRoute::SignInEmail,
            r#"{"email":"a@b.c","PASSWORD":"Secret"}"#,
        );
        assert_eq!(b.password.as_ref().map(Secret::expose), Some("Secret"));
        assert_eq!(json(&b)["password"], "Secret");
    }

    #[test]
    fn camel_to_snake_matches_kernias() {
        for (camel, snake) in [
            ("userId", "user_id"),
            ("Email", "email"),
            ("EMAIL", "email"),
            ("callbackURL", "callback_url"),
            ("phoneNumber", "phone_number"),
            ("phone2Number", "phone2_number"),
            ("already_snake", "already_snake"),
        ] {
            assert_eq!(camel_to_snake(camel), snake, "{camel}");
        }
    }

    #[test]
    fn bodies_kernia_reads_but_serde_cannot_are_refused() {
        let deep = format!(
            r#"{{"email":"a@b.c","password":"p","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        for raw in [
            r#"{"email":"bob@example.com","password":"p","rememberMe":NaN}"#,
            r#"{"email":"bob@example.com","password":"p","n":1e400}"#,
            r#"{"email":"bob@example.com","password":"p","n":Infinity}"#,
            deep.as_str(),
            "email=a%40b.c&password=x",
            "",
            "[]",
            "\u{feff}{\"email\":\"a@b.c\"}",
        ] {
            assert!(
                parse(AuthRoute::SignInEmail, raw.as_bytes()).is_err(),
                "{raw:.60}"
            );
        }
        for raw in [
            r#"{"email":["bob@example.com"],"password":"p"}"#,
            r#"{"email":42,"password":"p"}"#,
            r#"{"email":"bob@example.com","password":{"$ne":1}}"#,
        ] {
            let e = parse(AuthRoute::SignInEmail, raw.as_bytes()).unwrap_err();
            assert!(e.0.contains("must be a string"), "{raw}: {e}");
        }
    }

    #[test]
    fn missing_fields_are_left_for_kernia_to_refuse() {
        assert_eq!(email_of(r#"{"password":"p"}"#), None);
        let b = read(AuthRoute::SignInEmail, r#"{"email":"a@b.c"}"#);
        assert!(b.password.is_none());
    }

    #[test]
    fn usernames_and_sign_up_emails() {
        let b = read(
            AuthRoute::SignUpUsername,
            r#"{"username":"Ada_L","email":"A@B.C","password":"p"}"#,
        );
        assert_eq!(b.identifier, Some(Identifier::Username("ada_l".into())));
        assert_eq!(json(&b)["email"], "a@b.c");
        assert!(b.password.is_none(), "sign-ups are not verified");
        let b = read(
            AuthRoute::SignUpEmail,
            r#"{"Email":"A@B.C","password":"p"}"#,
        );
        assert_eq!(json(&b)["email"], "a@b.c");
        assert!(json(&b).get("Email").is_none());
    }

    #[test]
    fn phone_sign_ins_accept_both_spellings_and_send_kernias() {
        let phone = Some(Identifier::Phone("+14155550100".into()));
        for raw in [
            r#"{"phone_number":"+1 415 555 0100","password":"p"}"#,
            r#"{"phoneNumber":"+1 415 555 0100","password":"p","rememberMe":true}"#,
        ] {
            let b = read(AuthRoute::SignInPhone, raw);
            assert_eq!(b.identifier, phone, "{raw}");
            let v = json(&b);
            assert_eq!(v["phone_number"], "+14155550100");
            assert!(v.get("phoneNumber").is_none());
            assert!(
                v.get("rememberMe").is_none(),
                "Pydantic reads snake_case only"
            );
        }
        let v = json(&read(
            AuthRoute::SignInPhone,
            r#"{"phoneNumber":"+14155550100","password":"p","rememberMe":false}"#,
        ));
        assert_eq!(v["remember_me"], false);
        let v = json(&read(
            AuthRoute::PhoneResetPassword,
            r#"{"phoneNumber":"+14155550100","otp":"123456","newPassword":"n"}"#,
        ));
        assert_eq!(v["phone_number"], "+14155550100");
        assert_eq!(v["new_password"], "n");
        assert_eq!(v["otp"], "123456");
    }

    #[test]
    fn reset_bodies_of_the_better_auth_client_are_mapped() {
        let b = read(
            AuthRoute::ResetPassword,
            r#"{"newPassword":"new-password-1","token":"abc"}"#,
        );
        assert_eq!(b.reset_token.as_ref().map(Secret::expose), Some("abc"));
        let v = json(&b);
        assert_eq!(v["password"], "new-password-1");
        assert!(v.get("newPassword").is_none());
        // Kernia's own spelling wins when both are sent.
        let v = json(&read(
            AuthRoute::ResetPassword,
            r#"{"newPassword":"x","password":"kept","token":"abc"}"#,
        ));
        assert_eq!(v["password"], "kept");
    }

    #[test]
    fn reset_requests_normalize_the_email() {
        let b = read(
            AuthRoute::RequestPasswordReset,
            r#"{"email":"Bob@Example.com","redirectTo":"/reset"}"#,
        );
        let v = json(&b);
        assert_eq!(v["email"], "bob@example.com");
        assert_eq!(v["redirectTo"], "/reset");
    }
}
