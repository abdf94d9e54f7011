//! Small, panic-free decoding helpers shared by the verifiers, and the one
//! constant-time comparison they all use.
//!
//! Digests come from untrusted export rows, so every helper answers `None`
//! instead of failing loudly; callers turn `None` into a `Malformed` reason.
//! Decoders are deliberately lenient where real exporters differ (padding,
//! standard or URL-safe base64, hex case): leniency only widens which
//! *encodings* we read, never which passwords match.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use subtle::ConstantTimeEq as _;

/// Compare a computed value with the stored one in constant time.
///
/// Lengths are public (they come from the digest's shape), so a length
/// mismatch may return early; equal-length contents are compared without
/// data-dependent branches.
pub(super) fn ct_eq(computed: &[u8], stored: &[u8]) -> bool {
    computed.ct_eq(stored).into()
}

/// Lenient base64: padding optional, trailing bits ignored (as Python's and
/// Java's decoders do), standard (`+/`) or URL-safe (`-_`) alphabet. A string
/// can only be valid in both alphabets when it uses neither pair of special
/// characters, and then both readings give the same bytes.
pub(super) fn base64(s: &str) -> Option<Vec<u8>> {
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);
    if s.is_empty() {
        return None;
    }
    STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()
}

/// The bcrypt alphabet (`./A-Za-z0-9`), unpadded, as used inside a 60-char
/// bcrypt string. Trailing bits are ignored: crypt_blowfish does the same
/// when it reads a salt.
pub(super) fn bcrypt_base64(s: &str) -> Option<Vec<u8>> {
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true);
    const BCRYPT: GeneralPurpose = GeneralPurpose::new(&alphabet::BCRYPT, CONFIG);
    BCRYPT.decode(s).ok()
}

/// Standard base64 with padding, for building test digests.
#[cfg(test)]
pub(super) fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Hex in either case; `None` for an empty string, odd length or a non-hex
/// character.
pub(super) fn hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return None;
    }
    ::hex::decode(s).ok()
}

/// A non-negative decimal number made only of ASCII digits (no sign, no
/// spaces), as work factors are written. Too many digits is `None`.
pub(super) fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The password re-encoded as UTF-16 (little- or big-endian), or `None` when
/// the bytes are not UTF-8 and so have no UTF-16 form.
pub(super) fn utf16(password: &[u8], big_endian: bool) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(password).ok()?;
    let mut out = Vec::with_capacity(text.len() * 2);
    for unit in text.encode_utf16() {
        let bytes = if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        };
        out.extend_from_slice(&bytes);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_needs_equal_length_and_content() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn base64_accepts_both_alphabets_with_or_without_padding() {
        assert_eq!(base64("Bw==").as_deref(), Some(&[7u8][..]));
        assert_eq!(base64("Bw").as_deref(), Some(&[7u8][..]));
        assert_eq!(base64("-_8").as_deref(), base64("+/8").as_deref());
        assert_eq!(base64("+/8"), Some(vec![0xfb, 0xff]));
        assert_eq!(base64(""), None);
        assert_eq!(base64("a$b"), None);
        assert_eq!(base64("é"), None);
    }

    #[test]
    fn hex_reads_either_case_and_refuses_odd_lengths() {
        assert_eq!(hex("00fF"), Some(vec![0, 255]));
        assert_eq!(hex("abc"), None);
        assert_eq!(hex(""), None);
        assert_eq!(hex("zz"), None);
    }

    #[test]
    fn decimal_refuses_signs_and_huge_values() {
        assert_eq!(decimal("0100"), Some(100));
        assert_eq!(decimal("+1"), None);
        assert_eq!(decimal(" 1"), None);
        assert_eq!(decimal("99999999999999999999"), None);
        assert_eq!(decimal(""), None);
    }

    #[test]
    fn utf16_encodes_surrogate_pairs_in_both_byte_orders() {
        assert_eq!(
            utf16("a€".as_bytes(), false),
            Some(vec![0x61, 0, 0xac, 0x20])
        );
        assert_eq!(utf16("a".as_bytes(), true), Some(vec![0, 0x61]));
        assert_eq!(utf16("😀".as_bytes(), false).map(|v| v.len()), Some(4));
        assert_eq!(utf16(&[0xff], false), None);
    }
}
