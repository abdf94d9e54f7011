//! Synthetic Clerk exports of any size, for tests and benchmarks: a dashboard
//! CSV and Backend API JSON (users in pages, organizations, memberships,
//! invitations), shaped like Clerk's Backend API answers, with a mix of
//! hashers, social-only users, TOTP, backup codes, passkeys, custom roles and
//! expired invitations. Deterministic for a given seed; written as a stream,
//! so memory stays small whatever the size. Digests are well-formed strings,
//! not hashes of anything (the import never verifies them).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub users: u64,
    pub organizations: u64,
    /// Members per organization (the first is its creator).
    pub members_per_org: u64,
    pub invitations_per_org: u64,
    /// Users per JSON page file.
    pub page_size: u64,
    pub seed: u64,
    /// Unix milliseconds of the first user's creation.
    pub base_time_ms: i64,
}

impl SynthOptions {
    pub fn new(users: u64) -> SynthOptions {
        SynthOptions {
            users,
            organizations: users / 50,
            members_per_org: 5,
            invitations_per_org: 1,
            page_size: 10_000,
            seed: 1,
            base_time_ms: 1_700_000_000_000,
        }
    }
}

/// The files written.
#[derive(Debug, Clone, Default)]
pub struct SynthFiles {
    pub csv: PathBuf,
    pub users: Vec<PathBuf>,
    pub organizations: PathBuf,
    pub memberships: PathBuf,
    pub invitations: PathBuf,
}

/// splitmix64: a fast, well-mixed hash of a counter.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8; 64] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn chars(alphabet: &[u8], seed: u64, n: usize) -> String {
    (0..n)
        .map(|k| {
            alphabet[(mix(seed ^ (k as u64).wrapping_mul(0x1000_0001)) % alphabet.len() as u64)
                as usize] as char
        })
        .collect()
}

/// One synthetic user, derived from its number.
pub struct SynthUser {
    pub n: u64,
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub phone: Option<String>,
    pub hasher: Option<&'static str>,
    pub digest: Option<String>,
    pub totp: Option<String>,
    pub totp_enabled: bool,
    pub google: bool,
    pub backup_codes: bool,
    pub passkey: bool,
    pub banned: bool,
    pub in_csv: bool,
    pub in_api: bool,
    pub created_ms: i64,
}

impl SynthUser {
    pub fn new(opts: &SynthOptions, n: u64) -> SynthUser {
        let h = mix(opts.seed.wrapping_mul(0x5851_f42d_4c95_7f2d) ^ n);
        let pct = h % 100;
        let (hasher, digest) = match pct {
            0..=69 => (
                Some("bcrypt"),
                Some(format!("$2a$10${}", chars(B64, h, 53))),
            ),
            70..=74 => (
                Some("argon2id"),
                Some(
                    format!(
                        "$argon2id$v=19$m=65536,t=3,p=4${}${}",
                        chars(B64, h ^ 1, 22),
                        chars(B64, h ^ 2, 43)
                    )
                    .replace('.', "+"),
                ),
            ),
            75..=77 => (
                Some("pbkdf2_sha256_django"),
                Some(format!(
                    "pbkdf2_sha256$600000${}${}=",
                    chars(B64, h ^ 3, 22).replace(['.', '/'], "x"),
                    chars(B64, h ^ 4, 43).replace('.', "+")
                )),
            ),
            78..=79 => (
                Some("scrypt_firebase"),
                Some(format!(
                    "{}==${}==$Bw==$Bw==$8$14",
                    chars(B64, h ^ 5, 86).replace('.', "+"),
                    chars(B64, h ^ 6, 22).replace('.', "+")
                )),
            ),
            80 => (
                Some("awscognito"),
                Some(format!("awscognito#us-east-1_pool#client#{n}")),
            ),
            81 => (
                Some("md5"),
                Some(format!("{:032x}", u128::from(h) << 64 | u128::from(mix(h)))),
            ),
            _ => (None, None),
        };
        let sub = (h >> 8) % 100;
        SynthUser {
            n,
            id: format!("user_2{:026x}", u128::from(mix(h)) << 40 | u128::from(n)),
            email: format!("User{n}@Example{}.com", n % 97),
            username: (sub < 10).then(|| format!("User_{n}")),
            phone: (sub % 5 == 1).then(|| format!("+1415{:07}", n % 10_000_000)),
            hasher,
            digest,
            totp: (sub % 20 == 3).then(|| chars(B32, h ^ 7, 32)),
            totp_enabled: sub % 20 == 3 || sub == 44,
            google: hasher.is_none() && sub.is_multiple_of(2),
            backup_codes: sub % 50 == 7,
            passkey: sub == 11,
            banned: (h >> 16).is_multiple_of(200),
            in_csv: (h >> 24) % 100 >= 2,
            in_api: (h >> 24) % 100 != 50,
            created_ms: opts.base_time_ms + n as i64 * 1000,
        }
    }

    /// The user as `GET /v1/users` shows it.
    pub fn api_json(&self) -> Value {
        let email_id = format!("idn_e{:x}", self.n);
        let phone_id = format!("idn_p{:x}", self.n);
        let verification = |strategy: &str| json!({"status": "verified", "strategy": strategy, "attempts": null, "expire_at": null});
        let mut phones = Vec::new();
        if let Some(p) = &self.phone {
            phones.push(json!({"id": phone_id, "object": "phone_number", "phone_number": p, "reserved_for_second_factor": false,
                "default_second_factor": false, "reserved": false, "verification": verification("phone_code"), "linked_to": [], "backup_codes": null,
                "created_at": self.created_ms, "updated_at": self.created_ms}));
        }
        let mut externals = Vec::new();
        if self.google {
            externals.push(json!({"object": "google_account", "id": format!("idn_g{:x}", self.n), "provider": "oauth_google",
                "identification_id": email_id, "provider_user_id": format!("10{:019}", self.n), "approved_scopes": "email openid profile",
                "email_address": self.email.to_lowercase(), "first_name": "Test", "last_name": format!("User{}", self.n), "avatar_url": "",
                "image_url": "", "username": null, "public_metadata": {}, "label": null, "verification": {"status": "verified", "strategy": "oauth_google"},
                "created_at": self.created_ms, "updated_at": self.created_ms}));
        }
        json!({
            "id": self.id, "object": "user", "external_id": null,
            "primary_email_address_id": email_id, "primary_phone_number_id": self.phone.as_ref().map(|_| phone_id.clone()), "primary_web3_wallet_id": null,
            "username": self.username, "first_name": "Test", "last_name": format!("User{}", self.n), "locale": null,
            "image_url": format!("https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCIsImlpZCI6Imluc18y{}", chars(B32, self.n, 40)),
            "has_image": false, "public_metadata": {}, "private_metadata": {}, "unsafe_metadata": {},
            "email_addresses": [{"id": email_id, "object": "email_address", "email_address": self.email, "reserved": false,
                "linked_to": if self.google { json!([{"type": "oauth_google", "id": format!("idn_g{:x}", self.n)}]) } else { json!([]) },
                "verification": verification("email_code"), "created_at": self.created_ms, "updated_at": self.created_ms}],
            "phone_numbers": phones, "web3_wallets": [],
            "passkeys": if self.passkey { json!([{"id": format!("pkey_{:x}", self.n), "object": "passkey", "name": "MacBook", "last_used_at": self.created_ms, "verification": null}]) } else { json!([]) },
            "password_enabled": self.digest.is_some(), "two_factor_enabled": self.totp_enabled || self.backup_codes,
            "totp_enabled": self.totp_enabled, "backup_code_enabled": self.backup_codes,
            "mfa_enabled_at": null, "mfa_disabled_at": null, "password_last_updated_at": null,
            "external_accounts": externals, "saml_accounts": [], "enterprise_accounts": [],
            "last_sign_in_at": self.created_ms, "last_active_at": self.created_ms,
            "banned": self.banned, "locked": false, "lockout_expires_in_seconds": null, "verification_attempts_remaining": 100,
            "created_at": self.created_ms, "updated_at": self.created_ms,
            "delete_self_enabled": true, "create_organization_enabled": true, "legal_accepted_at": null
        })
    }

    fn csv_row(&self) -> [String; 14] {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            self.id.clone(),
            "Test".into(),
            format!("User{}", self.n),
            o(&self.username),
            self.email.clone(),
            o(&self.phone),
            self.email.clone(),
            String::new(),
            o(&self.phone),
            String::new(),
            o(&self.totp),
            o(&self.digest),
            self.hasher.unwrap_or("").to_string(),
            format!("{}", Rfc3339(self.created_ms / 1000)),
        ]
    }
}

/// Epoch seconds printed as RFC 3339 UTC.
struct Rfc3339(i64);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        // Civil-from-days (Howard Hinnant).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(1 << 16, File::create(path)?))
}

/// Write an export into `dir`.
pub fn generate(opts: &SynthOptions, dir: &Path) -> io::Result<SynthFiles> {
    std::fs::create_dir_all(dir)?;
    let mut files = SynthFiles {
        csv: dir.join("users.csv"),
        organizations: dir.join("organizations.json"),
        memberships: dir.join("memberships.json"),
        invitations: dir.join("invitations.json"),
        ..SynthFiles::default()
    };
    // CSV rows in a scrambled order, so the import's sort has work to do.
    let mut csv = csv::WriterBuilder::new().from_writer(create(&files.csv)?);
    let mut header: Vec<&str> = super::csv_export::KNOWN_COLUMNS.to_vec();
    header.push("created_at");
    csv.write_record(&header)?;
    let stride = stride_for(opts.users);
    for k in 0..opts.users {
        let u = SynthUser::new(opts, (k * stride) % opts.users);
        if u.in_csv {
            csv.write_record(u.csv_row())?;
        }
    }
    csv.flush()?;
    // API pages in creation order, as `order_by=+created_at` lists them.
    let page = opts.page_size.max(1);
    let mut n = 0;
    while n < opts.users {
        let path = dir.join(format!("users-{:06}.json", n / page + 1));
        let mut w = create(&path)?;
        w.write_all(b"[")?;
        let mut first = true;
        for i in n..(n + page).min(opts.users) {
            let u = SynthUser::new(opts, i);
            if !u.in_api {
                continue;
            }
            if !first {
                w.write_all(b",\n")?;
            }
            first = false;
            serde_json::to_writer(&mut w, &u.api_json())?;
        }
        w.write_all(b"]\n")?;
        w.flush()?;
        files.users.push(path);
        n += page;
    }
    write_orgs(opts, &files)?;
    Ok(files)
}

/// A stride coprime with `n`, to visit 0..n in a scrambled order.
fn stride_for(n: u64) -> u64 {
    let mut s = (n / 2 + 7919).max(1);
    while n > 1 && gcd(s, n) != 1 {
        s += 1;
    }
    s
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn write_orgs(opts: &SynthOptions, files: &SynthFiles) -> io::Result<()> {
    let users = opts.users.max(1);
    let mut orgs = create(&files.organizations)?;
    let mut members = create(&files.memberships)?;
    let mut invites = create(&files.invitations)?;
    let (mut n_org, mut n_mem, mut n_inv) = (0u64, 0u64, 0u64);
    for w in [&mut orgs, &mut members, &mut invites] {
        w.write_all(b"{\"data\": [")?;
    }
    let sep = |w: &mut BufWriter<File>, n: u64| w.write_all(if n == 0 { b"\n" } else { b",\n" });
    for o in 0..opts.organizations {
        let h = mix(opts.seed ^ 0x0f0f ^ o);
        let org_id = format!("org_2{:026x}", u128::from(h) << 32 | u128::from(o));
        let creator = SynthUser::new(opts, h % users);
        let created = opts.base_time_ms + o as i64 * 500;
        let org = json!({"object": "organization", "id": org_id, "name": format!("Org {o}"), "slug": format!("org-{o}"),
            "image_url": "https://img.clerk.com/org", "has_image": o % 3 == 0, "max_allowed_memberships": 0, "admin_delete_enabled": true,
            "public_metadata": if o % 4 == 0 { json!({"plan": "pro"}) } else { json!({}) }, "private_metadata": {"secret": "x"},
            "created_by": creator.id, "created_at": created, "updated_at": created});
        sep(&mut orgs, n_org)?;
        serde_json::to_writer(&mut orgs, &org)?;
        n_org += 1;
        for m in 0..opts.members_per_org {
            let user = if m == 0 {
                creator.n
            } else {
                mix(h ^ m) % users
            };
            let u = SynthUser::new(opts, user);
            let role = match (m, mix(h ^ m ^ 1) % 20) {
                (0, _) => "org:admin",
                (_, 0) => "org:billing",
                (_, 1..=4) => "org:admin",
                _ => "org:member",
            };
            let mem = json!({"object": "organization_membership", "id": format!("orgmem_{o:x}_{m:x}"), "role": role, "role_name": role,
                "permissions": [], "public_metadata": {}, "private_metadata": {},
                "organization": {"id": org_id, "name": format!("Org {o}"), "slug": format!("org-{o}"), "created_by": creator.id},
                "public_user_data": {"user_id": u.id, "first_name": "Test", "last_name": null, "image_url": "", "has_image": false, "identifier": u.email},
                "created_at": created, "updated_at": created});
            sep(&mut members, n_mem)?;
            serde_json::to_writer(&mut members, &mem)?;
            n_mem += 1;
        }
        for i in 0..opts.invitations_per_org {
            let kind = mix(h ^ i ^ 2) % 10;
            let (status, expires) = match kind {
                0 => ("revoked", created + 30 * 86_400_000),
                1 | 2 => ("pending", created - 1000),
                _ => ("pending", 2_000_000_000_000),
            };
            let inv = json!({"object": "organization_invitation", "id": format!("orginv_{o:x}_{i:x}"), "email_address": format!("invitee{o}.{i}@example.org"),
                "role": if i % 2 == 0 { "org:member" } else { "org:admin" }, "role_name": "Member", "organization_id": org_id,
                "inviter_id": if kind == 3 { Value::Null } else { json!(creator.id) }, "status": status, "public_metadata": {}, "private_metadata": {},
                "url": null, "expires_at": expires, "created_at": created, "updated_at": created});
            sep(&mut invites, n_inv)?;
            serde_json::to_writer(&mut invites, &inv)?;
            n_inv += 1;
        }
    }
    for (w, n) in [
        (&mut orgs, n_org),
        (&mut members, n_mem),
        (&mut invites, n_inv),
    ] {
        write!(w, "\n], \"total_count\": {n}}}\n")?;
        w.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_and_read_back() {
        let t = Rfc3339(1_771_418_354).to_string();
        assert_eq!(t, "2026-02-18T12:39:14Z");
        assert_eq!(super::super::normalize::rfc3339(&t).unwrap(), 1_771_418_354);
    }

    #[test]
    fn strides_visit_every_user_once() {
        for n in [1u64, 2, 10, 97, 1000] {
            let s = stride_for(n);
            let mut seen: Vec<u64> = (0..n).map(|k| (k * s) % n).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn an_export_parses_without_a_single_bad_record() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            page_size: 40,
            ..SynthOptions::new(200)
        };
        let files = generate(&opts, dir.path()).unwrap();
        assert_eq!(files.users.len(), 5);
        let mut export =
            super::super::csv_export::CsvExport::open(&files.csv, "users.csv").unwrap();
        let mut rows = 0;
        while let Some(row) = export.next_row() {
            assert!(matches!(
                row.unwrap(),
                super::super::csv_export::CsvRow::User(_)
            ));
            rows += 1;
        }
        assert!(rows > 180 && rows <= 200, "{rows}");
        for f in &files.users {
            super::super::json_input::for_each_element(f, "u", |at, raw| {
                let u: super::super::bapi::User =
                    super::super::json_input::typed(&at, raw).unwrap();
                u.check("u", &at).unwrap();
                Ok(())
            })
            .unwrap();
        }
    }
}
