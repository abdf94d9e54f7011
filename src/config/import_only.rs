//! What `cutover import` reads from the configuration file: the database,
//! `[import]` and `[log]`. An import only writes Kernia's database, so it
//! neither needs nor checks `[server]`, `[upstreams]`, the Kernia secret or any
//! other section: the same file `serve` uses works, and so does a file written
//! for the import alone.

use std::path::Path;

use super::reader::{Env, Problems, ProcessEnv, Section};
use super::{ConfigError, ImportConfig, LogConfig, Secret};

/// The settings an import runs with.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// `[kernia] database_url` (or `database_url_env`).
    pub database_url: Secret,
    pub import: ImportConfig,
    pub log: LogConfig,
}

impl ImportSettings {
    pub fn load(path: &Path) -> Result<ImportSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ImportSettings::parse(&text, path, &ProcessEnv)
    }

    pub fn parse(text: &str, origin: &Path, env: &dyn Env) -> Result<ImportSettings, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_path_buf(),
                    message: e.to_string(),
                })?;
        let mut p = Problems::default();
        let mut root = Section::root(table);
        // Only these keys are read; the rest of each section belongs to `serve`.
        let mut kernia = root.section(&mut p, "kernia");
        let database_url = kernia.secret(&mut p, env, "database_url");
        match &database_url {
            Some(url) => {
                let u = url.expose();
                if !(u.starts_with("postgres://")
                    || u.starts_with("postgresql://")
                    || u.starts_with("sqlite:"))
                {
                    p.push(
                        kernia.key("database_url"),
                        "must start with postgres://, postgresql:// or sqlite:",
                    );
                }
            }
            None if !p
                .0
                .iter()
                .any(|x| x.key.starts_with(&kernia.key("database_url"))) =>
            {
                p.push(
                    kernia.key("database_url"),
                    "is required (or name a variable in database_url_env)",
                )
            }
            None => {}
        }
        let import = ImportConfig::read(root.section(&mut p, "import"), &mut p);
        let log = LogConfig::read(root.section(&mut p, "log"), &mut p);
        match database_url {
            Some(database_url) if p.is_empty() => Ok(ImportSettings {
                database_url,
                import,
                log,
            }),
            _ => Err(ConfigError::Invalid {
                path: origin.to_path_buf(),
                problems: p.0,
            }),
        }
    }
}
