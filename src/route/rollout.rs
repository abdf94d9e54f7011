//! Sticky, monotone traffic shifting.
//!
//! Every browser carries a pin in the `cutover_route` cookie. The pin names a
//! *subject*: a random per-browser id at first, the user once cutover has seen
//! who it is (so the rollout is sticky per user, not per browser), or the fact
//! that the user's password already lives in Kernia. A subject's bucket is a
//! fixed number in [0, 1) — the first 64 bits of SHA-256(salt ‖ ":" ‖ subject)
//! — and it goes to Kernia when `bucket < percentage / 100`. Raising the
//! percentage therefore only ever moves subjects from legacy to kernia, never
//! back; lowering it is the way back. Changing the salt re-deals every bucket:
//! do not, mid-rollout.

use sha2::{Digest as _, Sha256};

/// The name of the pin cookie.
pub const COOKIE: &str = "cutover_route";

/// What a browser's pin says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// A random id for a browser whose user is unknown (`b.<hex>`).
    Browser(String),
    /// A known user, by an opaque hash of their id (`u.<hex>`).
    User(String),
    /// A user whose password lives in Kernia: always kernia (`m.<hex>`),
    /// except under the kill switch.
    Migrated(String),
    /// A known user an allow-override sends to kernia (`k.<hex>`).
    Allowed(String),
    /// A known user a deny-override keeps on legacy (`l.<hex>`).
    Denied(String),
}

impl Pin {
    /// A fresh random browser pin.
    pub fn new_browser() -> Pin {
        use rand::RngCore as _;
        let mut b = [0u8; 16];
        rand::rng().fill_bytes(&mut b);
        Pin::Browser(hex::encode(b))
    }

    /// The pin for a known user. The id itself never goes into the cookie.
    pub fn for_user(user_id: &str, migrated: bool) -> Pin {
        let h = user_subject(user_id);
        if migrated {
            Pin::Migrated(h)
        } else {
            Pin::User(h)
        }
    }

    /// Parse a cookie value; anything malformed is no pin at all.
    pub fn parse(value: &str) -> Option<Pin> {
        let (kind, id) = value.split_once('.')?;
        if id.len() != 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        match kind {
            "b" => Some(Pin::Browser(id.to_string())),
            "u" => Some(Pin::User(id.to_string())),
            "m" => Some(Pin::Migrated(id.to_string())),
            "k" => Some(Pin::Allowed(id.to_string())),
            "l" => Some(Pin::Denied(id.to_string())),
            _ => None,
        }
    }

    pub fn cookie_value(&self) -> String {
        format!("{}{}", self.kind(), self.subject())
    }

    /// The cookie value's prefix: `b.`, `u.`, `m.`, `k.` or `l.`.
    pub fn kind(&self) -> &'static str {
        match self {
            Pin::Browser(_) => "b.",
            Pin::User(_) => "u.",
            Pin::Migrated(_) => "m.",
            Pin::Allowed(_) => "k.",
            Pin::Denied(_) => "l.",
        }
    }

    /// The cookie value after the prefix.
    pub fn subject(&self) -> &str {
        match self {
            Pin::Browser(id)
            | Pin::User(id)
            | Pin::Migrated(id)
            | Pin::Allowed(id)
            | Pin::Denied(id) => id,
        }
    }
}

/// The subject string of a user: the first 128 bits of SHA-256("user:" ‖ id), hex.
fn user_subject(user_id: &str) -> String {
    UserSubject::of(user_id).as_str().to_owned()
}

/// A user's pin subject, computed once and kept on the user's cached identity
/// (`identify::HeaderValues`), so that routing a signed-in request does not
/// hash and hex-encode the user id again: the 32 hex digits, inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UserSubject([u8; 32]);

impl UserSubject {
    pub fn of(user_id: &str) -> UserSubject {
        let d = Sha256::new()
            .chain_update(b"user:")
            .chain_update(user_id.as_bytes())
            .finalize();
        let mut out = [0u8; 32];
        // 16 bytes always fit 32 hex digits.
        let _ = hex::encode_to_slice(&d[..16], &mut out);
        UserSubject(out)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII; the empty fallback is unreachable (and would
        // only make a pin that `Pin::parse` rejects).
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Debug for UserSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The subject's fixed position in [0, 1).
pub fn bucket(salt: &str, pin: &Pin) -> f64 {
    let d = Sha256::new()
        .chain_update(salt.as_bytes())
        .chain_update(b":")
        .chain_update(pin.subject().as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    // 53 bits are all an f64 holds exactly; plenty for percentages.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether this pin goes to Kernia at `percentage` (0–100).
pub fn to_kernia(salt: &str, pin: &Pin, percentage: f64) -> bool {
    match pin {
        Pin::Migrated(_) | Pin::Allowed(_) => true,
        Pin::Denied(_) => false,
        Pin::Browser(_) | Pin::User(_) => bucket(salt, pin) < percentage / 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_round_trip_through_the_cookie() {
        for pin in [
            Pin::new_browser(),
            Pin::for_user("user_2abc", false),
            Pin::for_user("user_2abc", true),
        ] {
            assert_eq!(Pin::parse(&pin.cookie_value()), Some(pin));
        }
        for bad in [
            "",
            "b.",
            "x.0123456789abcdef0123456789abcdef",
            "b.0123",
            "b.0123456789ABCDEF0123456789ABCDEF",
            "user_2abc",
        ] {
            assert_eq!(Pin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn user_pins_do_not_reveal_the_user_id() {
        assert!(
            !Pin::for_user("user_2abc", false)
                .cookie_value()
                .contains("user_2abc")
        );
    }

    #[test]
    fn a_user_keeps_one_bucket_on_every_browser() {
        let a = Pin::for_user("user_1", false);
        let b = Pin::for_user("user_1", false);
        assert_eq!(bucket("s", &a), bucket("s", &b));
    }

    #[test]
    fn share_matches_the_percentage_and_raising_it_moves_nobody_back() {
        let pins: Vec<Pin> = (0..10_000).map(|_| Pin::new_browser()).collect();
        let at =
            |pct: f64| -> Vec<bool> { pins.iter().map(|p| to_kernia("salt", p, pct)).collect() };
        let quarter = at(25.0);
        let share = quarter.iter().filter(|k| **k).count() as f64 / pins.len() as f64;
        assert!((share - 0.25).abs() < 0.02, "share at 25% was {share}");
        let half = at(50.0);
        for (q, h) in quarter.iter().zip(&half) {
            assert!(
                !q || *h,
                "a browser on kernia at 25% went back to legacy at 50%"
            );
        }
        assert!(at(0.0).iter().all(|k| !k));
        assert!(at(100.0).iter().all(|k| *k));
        let fractional = at(0.5).iter().filter(|k| **k).count();
        assert!(
            fractional > 10 && fractional < 100,
            "0.5% gave {fractional} of 10000"
        );
    }

    #[test]
    fn migrated_users_go_to_kernia_at_any_percentage() {
        assert!(to_kernia("s", &Pin::for_user("u", true), 0.0));
    }
}
