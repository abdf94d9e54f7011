//! Accounting: what an import counted, the summary it prints and the JSON
//! report it writes.
//!
//! Every input record lands in exactly one bucket of its entity's [`Tally`]:
//! imported, already present (left alone), conflict, skipped (with a reason) or
//! invalid. [`Tally::adds_up`] checks that the buckets sum to the input. The
//! ledger-state and hasher counts cover the users imported by this run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::issue::Issue;

/// The buckets of one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tally {
    pub input: u64,
    pub imported: u64,
    pub already_present: u64,
    pub conflicts: u64,
    pub skipped: u64,
    pub invalid: u64,
}

impl Tally {
    pub fn accounted(&self) -> u64 {
        self.imported + self.already_present + self.conflicts + self.skipped + self.invalid
    }

    pub fn adds_up(&self) -> bool {
        self.accounted() == self.input
    }

    fn add(&mut self, other: &Tally) {
        let Tally {
            input,
            imported,
            already_present,
            conflicts,
            skipped,
            invalid,
        } = other;
        self.input += input;
        self.imported += imported;
        self.already_present += already_present;
        self.conflicts += conflicts;
        self.skipped += skipped;
        self.invalid += invalid;
    }
}

fn add_map(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// Everything a run counts. Stored with the run after every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub users: Tally,
    /// User records read (CSV rows and API objects, bad ones included): one
    /// user may have a CSV row and an API object. The progress line counts these.
    pub user_records: u64,
    /// Ledger state → users imported by this run.
    pub ledger: BTreeMap<String, u64>,
    /// Password hasher (`none` without a digest) → users imported by this run.
    pub hashers: BTreeMap<String, u64>,
    /// Social accounts of the users imported by this run.
    pub accounts: Tally,
    pub providers: BTreeMap<String, u64>,
    /// `twoFactor` rows written.
    pub two_factor: u64,
    /// Factor that could not move → users to ask to re-enrol it.
    pub reenrol: BTreeMap<String, u64>,
    pub organizations: Tally,
    pub memberships: Tally,
    /// Kernia role → members imported.
    pub roles: BTreeMap<String, u64>,
    /// Roles outside the mapping, kept without `org:` → members.
    pub custom_roles: BTreeMap<String, u64>,
    pub invitations: Tally,
    /// `entity: reason` → records skipped for it.
    pub skipped_reasons: BTreeMap<String, u64>,
    pub warnings: u64,
    /// Problems with whole files (unreadable tails, missing columns).
    pub file_problems: u64,
    /// What a later run refreshed in rows an earlier one wrote (a user's
    /// profile, a stale or newer digest, a ban, a removal, an organization…):
    /// kind → count. These records are also counted `already_present`.
    pub refreshed: BTreeMap<String, u64>,
}

impl Counters {
    /// Add another count to this one (a batch's counts to the run's totals).
    pub fn add(&mut self, other: &Counters) {
        // Destructured, so a new field cannot be forgotten here.
        let Counters {
            users,
            user_records,
            ledger,
            hashers,
            accounts,
            providers,
            two_factor,
            reenrol,
            organizations,
            memberships,
            roles,
            custom_roles,
            invitations,
            skipped_reasons,
            warnings,
            file_problems,
            refreshed,
        } = other;
        self.users.add(users);
        self.user_records += user_records;
        add_map(&mut self.ledger, ledger);
        add_map(&mut self.hashers, hashers);
        self.accounts.add(accounts);
        add_map(&mut self.providers, providers);
        self.two_factor += two_factor;
        add_map(&mut self.reenrol, reenrol);
        self.organizations.add(organizations);
        self.memberships.add(memberships);
        add_map(&mut self.roles, roles);
        add_map(&mut self.custom_roles, custom_roles);
        self.invitations.add(invitations);
        add_map(&mut self.skipped_reasons, skipped_reasons);
        self.warnings += warnings;
        self.file_problems += file_problems;
        add_map(&mut self.refreshed, refreshed);
    }

    /// Count a re-enrolment note by the factors it names.
    pub fn count_reenrol(&mut self, message: &str) {
        for (needle, key) in [
            ("backup codes", "backup_codes"),
            ("passkeys", "passkeys"),
            ("authenticator", "totp"),
        ] {
            if message.contains(needle) {
                *self.reenrol.entry(key.into()).or_default() += 1;
            }
        }
    }

    /// Whether every entity's buckets sum to its input.
    pub fn adds_up(&self) -> bool {
        [
            &self.users,
            &self.organizations,
            &self.memberships,
            &self.invitations,
        ]
        .iter()
        .all(|t| t.adds_up())
            && self.ledger.values().sum::<u64>() == self.users.imported
            && self.hashers.values().sum::<u64>() == self.users.imported
    }
}

/// Facts about the run, for the report's header.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub fingerprint: String,
    pub resumed: bool,
    pub dry_run: bool,
    pub started_at: i64,
    pub finished_at: i64,
    pub inputs: Vec<String>,
}

/// The summary printed at the end of a run.
pub fn summary(run: &RunInfo, c: &Counters, first_issues: &[Issue], issue_count: u64) -> String {
    let mut s = String::new();
    let verb = if run.dry_run {
        "dry run finished (nothing was written)"
    } else {
        "finished"
    };
    let _ = writeln!(
        s,
        "cutover import: {verb}; run {}{}",
        run.id,
        if run.resumed { " (resumed)" } else { "" }
    );
    let _ = writeln!(
        s,
        "{:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "input", "imported", "present", "conflicts", "skipped", "invalid"
    );
    for (name, t) in [
        ("users", &c.users),
        ("social accounts", &c.accounts),
        ("organizations", &c.organizations),
        ("memberships", &c.memberships),
        ("invitations", &c.invitations),
    ] {
        let _ = writeln!(
            s,
            "{name:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            t.input, t.imported, t.already_present, t.conflicts, t.skipped, t.invalid
        );
    }
    if c.user_records > 0 {
        let _ = writeln!(
            s,
            "user records:    {} read (CSV rows and API objects) for {} users",
            c.user_records, c.users.input
        );
    }
    let list = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "-".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(s, "ledger states:   {}", list(&c.ledger));
    let _ = writeln!(s, "hashers:         {}", list(&c.hashers));
    let _ = writeln!(s, "providers:       {}", list(&c.providers));
    let _ = writeln!(s, "two-factor rows: {}", c.two_factor);
    let _ = writeln!(s, "re-enrol:        {}", list(&c.reenrol));
    let _ = writeln!(s, "member roles:    {}", list(&c.roles));
    if !c.custom_roles.is_empty() {
        let _ = writeln!(
            s,
            "custom roles:    {} (kept without `org:`; define them in Kernia or map them in [import.roles])",
            list(&c.custom_roles)
        );
    }
    if !c.refreshed.is_empty() {
        let _ = writeln!(s, "refreshed:       {}", list(&c.refreshed));
    }
    if !c.skipped_reasons.is_empty() {
        let _ = writeln!(s, "skipped:         {}", list(&c.skipped_reasons));
    }
    if issue_count > 0 {
        let _ = writeln!(
            s,
            "issues:          {issue_count} (first {} below{})",
            first_issues.len(),
            if issue_count as usize > first_issues.len() {
                "; all in the report"
            } else {
                ""
            }
        );
        for i in first_issues {
            let _ = writeln!(s, "  - {i}");
        }
    }
    if !c.adds_up() {
        let _ = writeln!(
            s,
            "WARNING: the counts do not add up to the input; please report this"
        );
    }
    s
}

/// Writes the JSON report: header and counts, then the issues streamed in.
pub struct ReportWriter<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> ReportWriter<W> {
    pub fn start(mut out: W, run: &RunInfo, c: &Counters) -> io::Result<Self> {
        let head = serde_json::json!({
            "run": run,
            "adds_up": c.adds_up(),
            "counts": c,
        });
        let text = serde_json::to_string_pretty(&head).map_err(io::Error::other)?;
        // Reopen the object to append the issue list.
        let open = text.trim_end().strip_suffix('}').unwrap_or(&text);
        out.write_all(open.trim_end().as_bytes())?;
        out.write_all(b",\n  \"issues\": [")?;
        Ok(ReportWriter { out, first: true })
    }

    pub fn issue(&mut self, issue: &Issue) -> io::Result<()> {
        let text = serde_json::to_string(issue).map_err(io::Error::other)?;
        self.out
            .write_all(if self.first { b"\n    " } else { b",\n    " })?;
        self.first = false;
        self.out.write_all(text.as_bytes())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out
            .write_all(if self.first { b"]\n}\n" } else { b"\n  ]\n}\n" })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::issue::{Entity, IssueKind};

    fn info() -> RunInfo {
        RunInfo {
            id: "imp_1".into(),
            fingerprint: "f".into(),
            resumed: false,
            dry_run: false,
            started_at: 1,
            finished_at: 2,
            inputs: vec!["users.csv".into()],
        }
    }

    #[test]
    fn counts_added_batch_by_batch_equal_counts_made_in_one() {
        let count = |c: &mut Counters, hasher: &str| {
            c.users.input += 1;
            c.users.imported += 1;
            *c.hashers.entry(hasher.into()).or_default() += 1;
            *c.ledger.entry("pending_password".into()).or_default() += 1;
            c.warnings += 1;
        };
        let mut whole = Counters::default();
        let mut first = Counters::default();
        let mut second = Counters::default();
        for (h, part) in [("bcrypt", &mut first), ("argon2id", &mut second)] {
            count(&mut whole, h);
            count(part, h);
        }
        count(&mut whole, "bcrypt");
        count(&mut second, "bcrypt");
        let mut added = Counters::default();
        added.add(&first);
        added.add(&second);
        assert_eq!(added, whole);
        assert!(added.adds_up());
    }

    #[test]
    fn tallies_add_up_only_when_every_record_has_a_bucket() {
        let mut c = Counters {
            users: Tally {
                input: 5,
                imported: 2,
                already_present: 1,
                conflicts: 1,
                skipped: 0,
                invalid: 1,
            },
            ..Counters::default()
        };
        c.ledger.insert("pending_password".into(), 2);
        c.hashers.insert("bcrypt".into(), 2);
        assert!(c.adds_up());
        c.users.input = 6;
        assert!(!c.adds_up());
    }

    #[test]
    fn report_is_valid_json_with_streamed_issues() {
        let c = Counters::default();
        for n in [0, 3] {
            let mut w = ReportWriter::start(Vec::new(), &info(), &c).unwrap();
            for i in 0..n {
                w.issue(&Issue::new(
                    IssueKind::Conflict,
                    Entity::User,
                    Some(&format!("user_{i}")),
                    "x",
                ))
                .unwrap();
            }
            let bytes = w.finish().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["issues"].as_array().unwrap().len(), n);
            assert_eq!(v["run"]["id"], "imp_1");
            assert_eq!(v["adds_up"], true);
        }
    }

    #[test]
    fn summary_lists_every_entity() {
        let s = summary(&info(), &Counters::default(), &[], 0);
        for word in [
            "users",
            "organizations",
            "memberships",
            "invitations",
            "ledger states",
        ] {
            assert!(s.contains(word), "{s}");
        }
    }
}
