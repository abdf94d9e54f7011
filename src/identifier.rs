//! The one form of a user's identifiers: email, username, phone number.
//!
//! Kernia 0.1.0 stores an email as given at sign-up and compares sign-in
//! emails byte for byte, so `Ada@Example.com` and `ada@example.com` would be
//! two people to it. cutover puts every identifier in one form wherever it
//! meets one — `cutover import` writing the ledger and Kernia's `user` row,
//! the sign-in and sign-up bodies the proxy rewrites — and this module is
//! the only place that form is defined. A user imported from Clerk, or who
//! signed up through cutover, can therefore always be found again, whatever
//! case they type.
//!
//! Two kinds of function:
//! - the *normal form* ([`email`], [`username`], [`phone`]) never fails: it
//!   is what a typed identifier is looked up by;
//! - the *checked form* ([`checked_email`], [`checked_phone`]) also refuses
//!   values that cannot be an identifier at all (the import reports them).

/// The longest string a Kernia `VARCHAR(255)` column holds.
pub const MAX_TEXT: usize = 255;

/// An email address in normal form: trimmed and lower-cased.
pub fn email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// A username in normal form: trimmed and lower-cased (Kernia's username
/// plugin lower-cases too).
pub fn username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// A phone number in normal form, as far as it can be known without a
/// country: separators (space, `-`, `.`, `/`, parentheses, no-break space)
/// dropped and a leading `00` turned into `+`.
pub fn phone(raw: &str) -> String {
    let kept: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '/' | '\u{a0}'))
        .collect();
    match kept.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => kept,
    }
}

/// Why a value cannot be an identifier. It never quotes a secret; it may
/// quote the value itself (identifiers are not secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("{0:?} is not an email address")]
    Email(String),
    #[error("email address longer than {MAX_TEXT} bytes")]
    EmailTooLong,
    #[error("{0:?} is not an E.164 phone number (+ country code and number)")]
    Phone(String),
}

/// [`email`], refusing what cannot be an address (no `@`, an empty side,
/// two `@`, whitespace or control characters, longer than a Kernia column).
pub fn checked_email(raw: &str) -> Result<String, Invalid> {
    let e = email(raw);
    let bad = || Invalid::Email(raw.to_string());
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || e.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    if e.len() > MAX_TEXT {
        return Err(Invalid::EmailTooLong);
    }
    Ok(e)
}

/// [`phone`], refusing anything but E.164: `+` and 7 to 15 digits, the first
/// not `0`. A number without a country code is refused rather than guessed.
pub fn checked_phone(raw: &str) -> Result<String, Invalid> {
    let p = phone(raw);
    match p.strip_prefix('+') {
        Some(d)
            if (7..=15).contains(&d.len())
                && d.bytes().all(|b| b.is_ascii_digit())
                && !d.starts_with('0') =>
        {
            Ok(p)
        }
        _ => Err(Invalid::Phone(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        for typed in [
            "bob@example.com",
            "BOB@EXAMPLE.COM",
            "Bob@example.COM",
            "  bob@example.com ",
        ] {
            assert_eq!(email(typed), "bob@example.com", "{typed}");
        }
        assert_eq!(
            checked_email("  Jane.Doe@Example.COM ").unwrap(),
            "jane.doe@example.com"
        );
        for bad in ["", "jane", "@x.com", "jane@", "a b@x.com", "a@b@c"] {
            assert!(checked_email(bad).is_err(), "{bad}");
        }
        assert_eq!(
            checked_email(&format!("{}@x.com", "a".repeat(260))),
            Err(Invalid::EmailTooLong)
        );
    }

    #[test]
    fn usernames_are_trimmed_and_lower_cased() {
        assert_eq!(username(" Ada_L "), "ada_l");
    }

    #[test]
    fn phones_lose_separators_and_gain_a_plus() {
        assert_eq!(phone(" +1 (415) 555-0100 "), "+14155550100");
        assert_eq!(phone("0044 20 7946 0958"), "+442079460958");
        assert_eq!(phone("+1/415.555.0100"), "+14155550100");
        assert_eq!(checked_phone("+1 (415) 555-0101").unwrap(), "+14155550101");
        assert_eq!(checked_phone("0044 20 7946 0958").unwrap(), "+442079460958");
        for bad in [
            "4155550101",
            "+0123456789",
            "+12",
            "+1415555010112345",
            "+1-800-FLOWERS",
        ] {
            assert!(checked_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_checked_form_is_the_normal_form() {
        // What import writes is what a sign-in looks up.
        for raw in [" Ada@Example.com", "ADA@EXAMPLE.COM"] {
            assert_eq!(checked_email(raw).unwrap(), email(raw));
        }
        for raw in ["+1 415 555 0100", "0044/20/7946/0958"] {
            assert_eq!(checked_phone(raw).unwrap(), phone(raw));
        }
    }
}
