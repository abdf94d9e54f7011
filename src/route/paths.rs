//! Request paths as the upstream app will understand them.
//!
//! Deny rules and the "under Kernia's base path" rule must match what the app
//! actually serves, not the raw bytes a client sent: uvicorn percent-decodes the
//! path before Starlette routes it, so `/api/auth/admin/create%2Duser` reaches
//! the same handler as `/api/auth/admin/create-user`. [`normalize`] therefore
//! decodes percent-escapes, merges repeated slashes, resolves `.` and `..`
//! segments and drops a trailing slash, and every path rule is applied to that
//! form. The request is still forwarded with its original path.

use std::borrow::Cow;

/// The path an app router would see: decoded, dot segments resolved, single
/// slashes, no trailing slash (except for `/` itself). Query strings are not
/// part of the input.
pub fn normalize(raw: &str) -> Cow<'_, str> {
    let needs_work = raw.contains('%')
        || raw.contains("//")
        || raw.contains("/.")
        || (raw.len() > 1 && raw.ends_with('/'))
        || !raw.starts_with('/');
    if !needs_work {
        return Cow::Borrowed(raw);
    }
    let decoded = percent_decode(raw);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Decode `%XX` escapes; invalid escapes are kept as they are. Bytes that do not
/// form UTF-8 are replaced (a router would not match them either).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether `path` (normalized) is `base` or below it, segment-wise:
/// `/api/auth` and `/api/auth/x` are under `/api/auth`; `/api/authx` is not.
pub fn is_under(path: &str, base: &str) -> bool {
    path == base || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_borrowed_unchanged() {
        assert!(matches!(
            normalize("/api/auth/sign-in/email"),
            Cow::Borrowed(_)
        ));
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn evasions_of_a_denied_path_all_normalize_to_it() {
        let target = "/api/auth/admin/create-user";
        for raw in [
            "/api/auth/admin/create-user/",
            "//api/auth/admin/create-user",
            "/api//auth/admin/create-user",
            "/api/auth/./admin/create-user",
            "/api/auth/x/../admin/create-user",
            "/api/auth/admin/create%2Duser",
            "/api/auth/admin/create%2duser",
            "/api/auth/admin%2Fcreate-user",
            "/%61pi/auth/admin/create-user",
        ] {
            assert_eq!(normalize(raw), target, "{raw}");
        }
    }

    #[test]
    fn dot_dot_cannot_climb_above_the_root() {
        assert_eq!(normalize("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(normalize("/.."), "/");
    }

    #[test]
    fn broken_escapes_are_kept() {
        assert_eq!(normalize("/a%zz/b%"), "/a%zz/b%");
        assert_eq!(normalize("/a%2"), "/a%2");
    }

    #[test]
    fn under_is_segment_wise() {
        assert!(is_under("/api/auth", "/api/auth"));
        assert!(is_under("/api/auth/sign-in/email", "/api/auth"));
        assert!(!is_under("/api/authx", "/api/auth"));
        assert!(!is_under("/api", "/api/auth"));
    }
}
