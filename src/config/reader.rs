//! Reading raw TOML into typed values while collecting every problem.
//!
//! serde stops at the first error; an operator fixing a config file wants them all
//! at once, each naming its key. So the loader walks the parsed `toml::Table` by
//! hand: a [`Section`] takes keys out of its table as they are read, every type or
//! value problem is pushed onto [`Problems`] with the full dotted key, and whatever
//! is left in a section at [`Section::finish`] is an unknown key.

use std::fmt;

use crate::secret::Secret;

/// One configuration problem: the dotted key it is about and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// Every problem found while loading one file.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where environment variables named by `*_env` keys are looked up. A seam so
/// tests can load configurations without touching the process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A table being read: its dotted path and the keys not read yet.
pub struct Section {
    path: String,
    table: toml::Table,
}

impl Section {
    pub fn root(table: toml::Table) -> Self {
        Section {
            path: String::new(),
            table,
        }
    }

    /// The dotted key for `key` inside this section.
    pub fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn take(&mut self, key: &str) -> Option<toml::Value> {
        self.table.remove(key)
    }

    /// A sub-table; absent means empty, so defaults apply.
    pub fn section(&mut self, p: &mut Problems, key: &str) -> Section {
        let path = self.key(key);
        match self.take(key) {
            None => Section {
                path,
                table: toml::Table::new(),
            },
            Some(toml::Value::Table(table)) => Section { path, table },
            Some(other) => {
                p.push(
                    &path,
                    format!("expected a table, found {}", other.type_str()),
                );
                Section {
                    path,
                    table: toml::Table::new(),
                }
            }
        }
    }

    /// Whether a sub-table is present at all (for optional sections).
    pub fn optional_section(&mut self, p: &mut Problems, key: &str) -> Option<Section> {
        if self.has(key) {
            Some(self.section(p, key))
        } else {
            None
        }
    }

    pub fn string(&mut self, p: &mut Problems, key: &str) -> Option<String> {
        match self.take(key)? {
            toml::Value::String(s) => Some(s),
            other => {
                p.push(
                    self.key(key),
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A string that must not be empty once trimmed.
    pub fn nonempty(&mut self, p: &mut Problems, key: &str) -> Option<String> {
        let s = self.string(p, key)?;
        if s.trim().is_empty() {
            p.push(self.key(key), "must not be empty");
            return None;
        }
        Some(s)
    }

    pub fn required(&mut self, p: &mut Problems, key: &str) -> Option<String> {
        if !self.has(key) {
            p.push(self.key(key), "is required");
            return None;
        }
        self.nonempty(p, key)
    }

    pub fn bool(&mut self, p: &mut Problems, key: &str, default: bool) -> bool {
        match self.take(key) {
            None => default,
            Some(toml::Value::Boolean(b)) => b,
            Some(other) => {
                p.push(
                    self.key(key),
                    format!("expected true or false, found {}", other.type_str()),
                );
                default
            }
        }
    }

    /// An integer within `min..=max`.
    pub fn int(&mut self, p: &mut Problems, key: &str, default: u64, min: u64, max: u64) -> u64 {
        match self.take(key) {
            None => default,
            Some(toml::Value::Integer(i)) if i >= 0 && (i as u64) >= min && (i as u64) <= max => {
                i as u64
            }
            Some(toml::Value::Integer(i)) => {
                p.push(
                    self.key(key),
                    format!("{i} is out of range: expected {min} to {max}"),
                );
                default
            }
            Some(other) => {
                p.push(
                    self.key(key),
                    format!("expected an integer, found {}", other.type_str()),
                );
                default
            }
        }
    }

    /// A number (integer or float) within `min..=max`.
    pub fn float(&mut self, p: &mut Problems, key: &str, default: f64, min: f64, max: f64) -> f64 {
        let value = match self.take(key) {
            None => return default,
            Some(toml::Value::Float(f)) => f,
            Some(toml::Value::Integer(i)) => i as f64,
            Some(other) => {
                p.push(
                    self.key(key),
                    format!("expected a number, found {}", other.type_str()),
                );
                return default;
            }
        };
        if !(min..=max).contains(&value) || value.is_nan() {
            p.push(
                self.key(key),
                format!("{value} is out of range: expected {min} to {max}"),
            );
            return default;
        }
        value
    }

    pub fn strings(&mut self, p: &mut Problems, key: &str) -> Vec<String> {
        match self.take(key) {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        toml::Value::String(s) => out.push(s),
                        other => p.push(
                            format!("{}[{i}]", self.key(key)),
                            format!("expected a string, found {}", other.type_str()),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                p.push(
                    self.key(key),
                    format!("expected an array of strings, found {}", other.type_str()),
                );
                Vec::new()
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice(
        &mut self,
        p: &mut Problems,
        key: &str,
        default: &'static str,
        allowed: &[&'static str],
    ) -> &'static str {
        let Some(s) = self.string(p, key) else {
            return default;
        };
        match allowed.iter().find(|a| **a == s) {
            Some(a) => a,
            None => {
                p.push(
                    self.key(key),
                    format!("`{s}` is not one of: {}", allowed.join(", ")),
                );
                default
            }
        }
    }

    /// A secret given inline as `key`, or by naming an environment variable in
    /// `key_env`. Giving both is an error; so is naming a variable that is unset.
    pub fn secret(&mut self, p: &mut Problems, env: &dyn Env, key: &str) -> Option<Secret> {
        let env_key = format!("{key}_env");
        let inline = self.string(p, key);
        let var = self.string(p, &env_key);
        match (inline, var) {
            (Some(_), Some(_)) => {
                p.push(
                    self.key(key),
                    format!("give either `{key}` or `{env_key}`, not both"),
                );
                None
            }
            (Some(value), None) => {
                if value.is_empty() {
                    p.push(self.key(key), "must not be empty");
                    return None;
                }
                Some(Secret::new(value))
            }
            (None, Some(name)) => match env.var(&name) {
                Some(value) if !value.is_empty() => Some(Secret::new(value)),
                Some(_) => {
                    p.push(
                        self.key(&env_key),
                        format!("environment variable {name} is empty"),
                    );
                    None
                }
                None => {
                    p.push(
                        self.key(&env_key),
                        format!("environment variable {name} is not set"),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// Every key of this section as a string-to-string pair (a table such as
    /// `[import.roles]` whose keys are data, not names), consuming the section.
    pub fn string_pairs(self, p: &mut Problems) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, value) in self.table {
            let dotted = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.\"{}\"", self.path, key)
            };
            match value {
                toml::Value::String(v) => out.push((key, v)),
                other => p.push(
                    dotted,
                    format!("expected a string, found {}", other.type_str()),
                ),
            }
        }
        out
    }

    /// A key that no longer exists: when present, take it and say what
    /// replaced it (rather than the bare "unknown key" of [`Section::finish`]).
    pub fn retired(&mut self, p: &mut Problems, key: &str, message: &str) {
        if self.take(key).is_some() {
            p.push(self.key(key), message);
        }
    }

    /// Report every key nobody read as unknown.
    pub fn finish(self, p: &mut Problems) {
        for (key, _) in self.table {
            let dotted = if self.path.is_empty() {
                key
            } else {
                format!("{}.{}", self.path, key)
            };
            p.push(dotted, "unknown key");
        }
    }
}

impl Section {
    /// An array of tables (`[[section.key]]`), each as a [`Section`] whose
    /// keys read as `section.key[i].name`.
    pub fn tables(&mut self, p: &mut Problems, key: &str) -> Vec<Section> {
        let path = self.key(key);
        match self.take(key) {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        toml::Value::Table(table) => out.push(Section {
                            path: format!("{path}[{i}]"),
                            table,
                        }),
                        other => p.push(
                            format!("{path}[{i}]"),
                            format!("expected a table, found {}", other.type_str()),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                p.push(
                    &path,
                    format!(
                        "expected an array of tables ([[{path}]]), found {}",
                        other.type_str()
                    ),
                );
                Vec::new()
            }
        }
    }

    /// A list of integers, each within `min..=max`.
    pub fn ints(&mut self, p: &mut Problems, key: &str, min: u64, max: u64) -> Option<Vec<u64>> {
        let dotted = self.key(key);
        match self.take(key)? {
            toml::Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        toml::Value::Integer(n)
                            if n >= 0 && (n as u64) >= min && (n as u64) <= max =>
                        {
                            out.push(n as u64)
                        }
                        other => p.push(
                            format!("{dotted}[{i}]"),
                            format!("expected an integer from {min} to {max}, found {other}"),
                        ),
                    }
                }
                Some(out)
            }
            other => {
                p.push(
                    dotted,
                    format!("expected an array of integers, found {}", other.type_str()),
                );
                None
            }
        }
    }
}
