//! v2 organization permissions: `per` × `fpm` × `fea` → `org:<feature>:<permission>`.
//!
//! v2 tokens do not list permission keys; they carry the permission names
//! (`o.per`), one bitmask per org-scoped feature (`o.fpm`) and the features
//! (`fea`), and the keys are rebuilt from them (Clerk's session-token rules).
//! This follows Clerk's code (`jwtPayloadParser.ts`, `splitByScope`), which
//! differs from its docs on how masks line up with features (see below).

/// Decodes v2 organization permissions, following Clerk's code:
///
/// - `per` lists permission names; `fpm` lists one decimal bitmask per
///   **org-scoped** entry of `fea`, in order; bit i (LSB = 0) of a mask grants
///   `per[i]` for that feature, giving `org:<feature>:<per[i]>`.
/// - An `fea` entry is org-scoped when its scope prefix contains `o` — `o:`,
///   and also `ou:`/`uo:` (features of both scopes), exactly as Clerk's
///   `splitByScope` filters. `u:` entries are skipped and take no mask. An
///   entry without a `scope:` prefix (Clerk never emits one) is skipped too.
/// - A mask that is not a number grants nothing but keeps its position; bits
///   beyond the listed permissions (or beyond 64) grant nothing; missing or
///   empty `per` or `fpm` means no permissions.
pub(crate) fn v2_permissions(
    fea: Option<&str>,
    per: Option<&str>,
    fpm: Option<&str>,
) -> Vec<String> {
    let (Some(fea), Some(per), Some(fpm)) = (fea, per, fpm) else {
        return Vec::new();
    };
    if per.is_empty() || fpm.is_empty() {
        return Vec::new();
    }
    let permissions: Vec<&str> = per.split(',').map(str::trim).collect();
    let org_features = fea.split(',').filter_map(|entry| {
        let (scope, rest) = entry.trim().split_once(':')?;
        let feature = rest.split(':').next().unwrap_or(rest);
        scope.contains('o').then_some(feature)
    });
    let masks = fpm.split(',').map(|m| m.trim().parse::<u64>().unwrap_or(0));
    let mut granted = Vec::new();
    for (feature, mask) in org_features.zip(masks) {
        for (bit, permission) in permissions.iter().enumerate().take(64) {
            if mask >> bit & 1 == 1 {
                granted.push(format!("org:{feature}:{permission}"));
            }
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fpm_decodes_the_reference_example() {
        let got = v2_permissions(
            Some("o:impersonation,o:memberships"),
            Some("read,manage"),
            Some("1,3"),
        );
        assert_eq!(
            got,
            [
                "org:impersonation:read",
                "org:memberships:read",
                "org:memberships:manage"
            ]
        );
    }

    #[test]
    fn fpm_aligns_with_org_scoped_features_only() {
        // `u:` entries take no mask; `ou:`/`uo:` count as org-scoped (splitByScope).
        let got = v2_permissions(
            Some("u:billing, o:teams,ou:reports,uo:audit"),
            Some("read,manage,delete"),
            Some("2,5,4"),
        );
        assert_eq!(
            got,
            [
                "org:teams:manage",
                "org:reports:read",
                "org:reports:delete",
                "org:audit:delete"
            ]
        );
    }

    #[test]
    fn fpm_edge_cases_grant_nothing_extra() {
        assert!(v2_permissions(None, Some("read"), Some("1")).is_empty());
        assert!(v2_permissions(Some("o:a"), None, Some("1")).is_empty());
        assert!(v2_permissions(Some("o:a"), Some("read"), None).is_empty());
        assert!(v2_permissions(Some("o:a"), Some(""), Some("1")).is_empty());
        // Bits beyond `per`, a bad mask keeping its place, more masks than features.
        let got = v2_permissions(Some("o:a,o:b,o:c"), Some("read"), Some("6,x,1,1"));
        assert_eq!(got, ["org:c:read"]);
        // An entry without a scope prefix is not a feature.
        assert_eq!(
            v2_permissions(Some("dashboard,o:a"), Some("read"), Some("1")),
            ["org:a:read"]
        );
    }
}
