//! Seeding users the way `cutover import` leaves them: a Kernia user row with
//! the Clerk id and no credential, and a `pending_*` ledger row with the
//! exported digest. Plus the fixtures' digests and a TOTP code generator.

use cutover::db::kernia::{self, NewUser};

use cutover::db::ledger::{self, LedgerEntry, LedgerState, NewLedgerEntry};
use cutover::db::{Db, KerniaSchema, now_secs, on_conn};
use hmac::Mac as _;

use super::repo_root;

/// A digest made by an independent library (tests/fixtures/hashes/vectors.json):
/// the first vector of `hasher` whose note contains `note`.
pub fn vector(hasher: &str, note: &str) -> (String, String) {
    let text =
        std::fs::read_to_string(repo_root().join("tests/fixtures/hashes/vectors.json")).unwrap();
    let all: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let v = all
        .iter()
        .find(|v| v["hasher"] == hasher && v["note"].as_str().unwrap_or("").contains(note))
        .unwrap_or_else(|| panic!("no {hasher} vector noted {note:?}"));
    (
        v["digest"].as_str().unwrap().into(),
        v["password"].as_str().unwrap().into(),
    )
}

/// A Kernia user (no credential) plus its ledger row.
pub async fn seed(
    db: &Db,
    user_id: &str,
    email: &str,
    state: LedgerState,
    hasher: Option<&str>,
    digest: Option<&str>,
) {
    let entry = NewLedgerEntry {
        user_id: user_id.into(),
        email: Some(email.into()),
        hasher: hasher.map(str::to_string),
        digest: digest.map(str::to_string),
        state: Some(state),
        ..NewLedgerEntry::default()
    };
    seed_with(db, NewUser::default(), entry).await;
}

/// A Kernia user and its ledger row as the import writes them, through
/// cutover's one writer. Empty `user` fields are filled from `entry`.
pub async fn seed_with(db: &Db, mut user: NewUser, entry: NewLedgerEntry) {
    let schema = KerniaSchema::read(db)
        .await
        .expect("Kernia's schema (start the Kernia app first)");
    let now = now_secs();
    user.id = entry.user_id.clone();
    if user.email.is_empty() {
        user.email = entry.email.clone().unwrap_or_default();
    }
    if user.phone_number.is_none() {
        user.phone_number = entry.phone.clone();
    }
    user.email_verified = true;
    user.name = user.name.or_else(|| Some(entry.user_id.clone()));
    user.created_at = now - 86_400;
    user.updated_at = now - 86_400;
    let mut tx = db.begin().await.unwrap();
    assert!(
        cutover::db::users::insert(&mut tx.conn(), &schema, &user, &entry)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
}

pub async fn entry(db: &Db, user_id: &str) -> LedgerEntry {
    let mut conn = db.acquire().await.unwrap();
    ledger::find_by_user(&mut conn.conn(), user_id)
        .await
        .unwrap()
        .expect("a ledger row")
}

pub async fn credential(db: &Db, user_id: &str) -> Option<String> {
    let mut conn = db.acquire().await.unwrap();
    kernia::credential_hash(&mut conn.conn(), user_id)
        .await
        .unwrap()
}

/// How many credential rows the user has (a migration must leave exactly one).
pub async fn credential_rows(db: &Db, user_id: &str) -> i64 {
    let mut conn = db.acquire().await.unwrap();
    on_conn!(&mut conn.conn(), |c| sqlx::query_scalar::<_, i64>(
        r#"SELECT COUNT(*) FROM account WHERE "userId" = $1 AND "providerId" = 'credential'"#
    )
    .bind(user_id)
    .fetch_one(c)
    .await
    .unwrap())
}

/// Give a user a TOTP secret the way the import does: a `twoFactor` row and
/// `user.twoFactorEnabled`.
pub async fn enable_totp(db: &Db, user_id: &str, secret: &str) {
    let mut conn = db.acquire().await.unwrap();
    on_conn!(&mut conn.conn(), |c| {
        sqlx::query(r#"INSERT INTO "twoFactor" (id, "userId", secret, "backupCodes", verified) VALUES ($1, $2, $3, '[]', $4)"#)
            .bind(kernia::new_id())
            .bind(user_id)
            .bind(secret)
            .bind(true)
            .execute(&mut *c)
            .await
            .unwrap();
        sqlx::query(r#"UPDATE "user" SET "twoFactorEnabled" = $1 WHERE id = $2"#)
            .bind(true)
            .bind(user_id)
            .execute(&mut *c)
            .await
            .unwrap();
    });
}

/// The current TOTP code for a base32 secret, waiting out the last seconds of
/// a step first so the server (which allows no drift) sees the same step.
pub async fn totp_now(secret_base32: &str) -> String {
    if now_secs() % 30 >= 27 {
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    }
    totp(secret_base32, now_secs() as u64)
}

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), as Clerk and Kernia (pyotp) use it.
pub fn totp(secret_base32: &str, unix: u64) -> String {
    let key = base32_decode(secret_base32);
    let counter = (unix / 30).to_be_bytes();
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&counter);
    let h = mac.finalize().into_bytes();
    let offset = (h[19] & 0x0f) as usize;
    let code = (u32::from_be_bytes([h[offset], h[offset + 1], h[offset + 2], h[offset + 3]])
        & 0x7fff_ffff)
        % 1_000_000;
    format!("{code:06}")
}

fn base32_decode(s: &str) -> Vec<u8> {
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').chars() {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => panic!("not base32: {c}"),
        };
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

#[test]
fn totp_matches_the_rfc_6238_vector() {
    // RFC 6238 appendix B, SHA-1 key "12345678901234567890", T = 59 → 94287082 (8 digits).
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(totp(secret, 59), "287082");
    assert_eq!(totp(secret, 1111111109), "081804");
}
