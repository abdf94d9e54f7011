//! Turning Clerk's values into the exact form Kernia stores, or saying why not.
//!
//! Pure functions, one per kind of value. Each returns the normalized value or a
//! short reason (the caller adds the location). Kernia's columns are
//! `VARCHAR(255)`, which PostgreSQL enforces, so lengths are checked here for
//! both engines alike.

/// The longest string a Kernia `VARCHAR(255)` column holds.
pub const MAX_TEXT: usize = crate::identifier::MAX_TEXT;

/// An email address as Kernia stores it, in the one form
/// [`crate::identifier`] defines (the form sign-ins are looked up by).
pub fn email(raw: &str) -> Result<String, String> {
    crate::identifier::checked_email(raw).map_err(|e| match e {
        crate::identifier::Invalid::EmailTooLong => e.to_string(),
        _ => format!("{} is not an email address", super::issue::quote(raw)),
    })
}

/// A phone number in E.164, in the one form [`crate::identifier`] defines;
/// a number without a country code is refused rather than guessed.
pub fn phone(raw: &str) -> Result<String, String> {
    crate::identifier::checked_phone(raw).map_err(|_| {
        format!(
            "{} is not an E.164 phone number (+ country code and number)",
            super::issue::quote(raw)
        )
    })
}

/// A multi-valued CSV cell: split on `|`, `,` or `;`, trimmed, empties dropped.
pub fn split_multi(cell: &str) -> Vec<&str> {
    cell.split(['|', ',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A TOTP secret in base32 as `otpauth://` URIs carry it: spaces and `=` padding
/// dropped, upper-cased. The value itself never appears in the reason.
pub fn totp_secret(raw: &str) -> Result<String, String> {
    let s: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !s
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    {
        return Err("totp_secret is not base32 (A-Z, 2-7)".into());
    }
    // 80 bits is the least RFC 4226 allows; Clerk issues 160.
    if s.len() < 16 {
        return Err("totp_secret is shorter than 16 base32 characters (80 bits)".into());
    }
    if s.len() > MAX_TEXT {
        return Err(format!("totp_secret longer than {MAX_TEXT} characters"));
    }
    Ok(s)
}

/// Clerk's milliseconds as Kernia's epoch seconds, which PostgreSQL keeps in a
/// 32-bit `INTEGER`.
pub fn ms_to_secs(ms: i64) -> Result<i64, String> {
    let secs = ms.div_euclid(1000);
    if (0..=i64::from(i32::MAX)).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "{ms} is not a time in milliseconds Kernia can store"
        ))
    }
}

/// An RFC 3339 time (the CSV's optional `created_at` column) as epoch seconds.
pub fn rfc3339(raw: &str) -> Result<i64, String> {
    let bad = || format!("{} is not an RFC 3339 time", super::issue::quote(raw));
    let s = raw.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let num = |from: usize, to: usize| -> Result<i64, String> {
        s.get(from..to)
            .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad)
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    // Skip fractional seconds, then read the offset.
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let h: i64 = rest[1..3].parse().map_err(|_| bad())?;
            let m: i64 = rest[4..6].parse().map_err(|_| bad())?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return Err(bad()),
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    if (0..=i64::from(i32::MAX)).contains(&secs) {
        Ok(secs)
    } else {
        Err(bad())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A display name from first and last name; `None` when both are empty.
pub fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Cut a display value to what a `VARCHAR(255)` holds, at a character boundary.
/// Returns whether it was cut.
pub fn clip(value: &mut String) -> bool {
    if value.len() <= MAX_TEXT {
        return false;
    }
    let mut end = MAX_TEXT;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.truncate(end);
    true
}

/// A non-empty trimmed string, or `None`.
pub fn non_empty(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            email("  Jane.Doe@Example.COM ").unwrap(),
            "jane.doe@example.com"
        );
        for bad in ["", "jane", "@x.com", "jane@", "a b@x.com", "a@b@c"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_become_e164_or_are_refused() {
        assert_eq!(phone("+1 (415) 555-0101").unwrap(), "+14155550101");
        assert_eq!(phone("0044 20 7946 0958").unwrap(), "+442079460958");
        for bad in [
            "4155550101",
            "+0123456789",
            "+12",
            "+1415555010112345",
            "+1-800-FLOWERS",
        ] {
            assert!(phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn multi_valued_cells_split_on_pipe_comma_and_semicolon() {
        assert_eq!(
            split_multi(" a@x.com | b@x.com,c@x.com;; d@x.com "),
            vec!["a@x.com", "b@x.com", "c@x.com", "d@x.com"]
        );
        assert!(split_multi("  ").is_empty());
    }

    #[test]
    fn totp_secrets_are_base32_and_never_quoted() {
        assert_eq!(
            totp_secret("jbsw y3dp ehpk 3pxp====").unwrap(),
            "JBSWY3DPEHPK3PXP"
        );
        let err = totp_secret("JBSWY3DPEHPK3PX1").unwrap_err();
        assert!(!err.contains("JBSW"), "{err}");
        assert!(totp_secret("JBSWY3DP").is_err());
    }

    #[test]
    fn times_convert_to_epoch_seconds() {
        assert_eq!(ms_to_secs(1_654_012_591_514).unwrap(), 1_654_012_591);
        assert!(ms_to_secs(-5).is_err());
        assert!(ms_to_secs(i64::from(i32::MAX) * 1000 + 1000).is_err());
        assert_eq!(rfc3339("2026-02-18T12:39:14Z").unwrap(), 1_771_418_354);
        assert_eq!(
            rfc3339("2026-02-18T14:39:14.123+02:00").unwrap(),
            1_771_418_354
        );
        assert_eq!(rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        for bad in [
            "2026-02-18",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "2026-02-18T12:39:14",
        ] {
            assert!(rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_join_and_clip() {
        assert_eq!(
            full_name(Some(" Jane "), Some("Doe")).as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(full_name(Some(""), None), None);
        let mut long = "é".repeat(200);
        assert!(clip(&mut long));
        assert!(long.len() <= MAX_TEXT);
    }
}
