//! What went wrong with one input record, and where.
//!
//! Every problem the import meets is an [`Issue`]: a bad row (with the file,
//! line and column, or the JSON path, that names it), a conflict with a row
//! already in Kernia, a record skipped for a reason, a user to ask to re-enrol a
//! factor that could not move, or a warning about a value Kernia cannot hold.
//! Messages are built here from checked values only: a digest or a TOTP secret
//! never reaches one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where in the input a record (or one of its values) sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    /// 1-based line (CSV: the line the record starts on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// CSV: `6 (primary_phone_number)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// JSON: `$[3].email_addresses[0].email_address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Location {
    pub fn csv(file: &str, line: u64) -> Location {
        Location {
            file: file.to_string(),
            line: Some(line),
            column: None,
            path: None,
        }
    }

    pub fn csv_cell(file: &str, line: u64, index: usize, name: &str) -> Location {
        Location {
            column: Some(format!("{} ({name})", index + 1)),
            ..Location::csv(file, line)
        }
    }

    pub fn json(file: &str, path: impl Into<String>) -> Location {
        Location {
            file: file.to_string(),
            line: None,
            column: None,
            path: Some(path.into()),
        }
    }

    pub fn file(file: &str) -> Location {
        Location {
            file: file.to_string(),
            line: None,
            column: None,
            path: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ": column {column}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        Ok(())
    }
}

/// Which kind of Clerk object an issue is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    User,
    Account,
    Organization,
    Membership,
    Invitation,
    File,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::User => "user",
            Entity::Account => "account",
            Entity::Organization => "organization",
            Entity::Membership => "membership",
            Entity::Invitation => "invitation",
            Entity::File => "file",
        }
    }
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// Bad input: the record was not imported.
    Invalid,
    /// A row already in Kernia holds the same email, username, phone, slug or
    /// social account under another id; neither side was touched.
    Conflict,
    /// Valid input left out on purpose (expired invitation, member of a user
    /// who was not imported, …).
    Skipped,
    /// Imported, but the user must re-enrol a factor that cannot leave Clerk.
    Reenrol,
    /// Imported with a change worth knowing (a custom role, a dropped value).
    Warning,
}

impl IssueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Invalid => "invalid",
            IssueKind::Conflict => "conflict",
            IssueKind::Skipped => "skipped",
            IssueKind::Reenrol => "reenrol",
            IssueKind::Warning => "warning",
        }
    }

    pub fn parse(s: &str) -> Option<IssueKind> {
        [
            IssueKind::Invalid,
            IssueKind::Conflict,
            IssueKind::Skipped,
            IssueKind::Reenrol,
            IssueKind::Warning,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One problem with one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub kind: IssueKind,
    pub entity: Entity,
    /// The record's Clerk id, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub message: String,
}

impl Issue {
    pub fn new(
        kind: IssueKind,
        entity: Entity,
        id: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Issue {
            kind,
            entity,
            id: id.map(str::to_string),
            location: None,
            message: message.into(),
        }
    }

    pub fn invalid(
        entity: Entity,
        id: Option<&str>,
        at: Location,
        message: impl Into<String>,
    ) -> Self {
        Issue {
            location: Some(at),
            ..Issue::new(IssueKind::Invalid, entity, id, message)
        }
    }

    pub fn at(mut self, at: Location) -> Self {
        self.location = Some(at);
        self
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.entity.as_str())?;
        if let Some(id) = &self.id {
            write!(f, " {id}")?;
        }
        if let Some(at) = &self.location {
            write!(f, " at {at}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A value quoted in a message, cut short so one bad cell cannot flood a report.
pub fn quote(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_print_file_line_column_or_path() {
        let csv = Location::csv_cell("users.csv", 17, 5, "primary_phone_number");
        assert_eq!(
            csv.to_string(),
            "users.csv:17: column 6 (primary_phone_number)"
        );
        let json = Location::json("users-1.json", "$[3].email_addresses[0]");
        assert_eq!(json.to_string(), "users-1.json: $[3].email_addresses[0]");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(500);
        assert!(quote(&long).len() < 100);
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }
}
