//! The command line, as clap parses it. Nothing here does any work: each
//! subcommand's arguments go to its module under `cmd/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// cutover — a dual-run authentication proxy for moving an app from Clerk to Kernia.
///
/// Exit status: 0 success; 1 failure (or, for `hash verify`, a password that does
/// not match); 2 usage or configuration error (or, for `hash verify`, an unknown
/// hasher or unusable digest).
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

pub const EXIT_CODES: &str = "Exit status:
  0  success
  1  failure (for `hash verify`: the password does not match)
  2  usage or configuration error (for `hash verify`: unknown hasher, malformed or over-cap digest)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the dual-run proxy in front of the legacy (Clerk) and Kernia apps
    Serve(ServeArgs),
    /// Load a Clerk export (CSV and Backend API JSON) into Kernia's database
    Import(ImportArgs),
    /// Check a password against a legacy digest exported from Clerk
    #[command(subcommand)]
    Hash(HashCommand),
    /// Show migration progress: ledger counts by state
    Status(StatusArgs),
    /// Write a self-signed certificate and key for local TLS
    DevCert(DevCertArgs),
}

/// The configuration file, shared by every subcommand that needs one.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML); see config/cutover.example.toml
    #[arg(
        short = 'c',
        long = "config",
        env = "CUTOVER_CONFIG",
        value_name = "FILE"
    )]
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Validate the configuration, print a summary and exit
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Arguments of the import (see `cutover import --help` once it lands)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum HashCommand {
    /// Verify a password read from standard input against a digest
    Verify(HashVerifyArgs),
}

#[derive(Args)]
pub struct HashVerifyArgs {
    /// Clerk's password_hasher value, e.g. bcrypt, argon2id, pbkdf2_sha256_django
    #[arg(long)]
    pub hasher: String,
    /// The password_digest value from the export
    #[arg(long)]
    pub digest: String,
}

/// By hand, so printing the parsed command line never shows the digest.
impl std::fmt::Debug for HashVerifyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashVerifyArgs")
            .field("hasher", &self.hasher)
            .field("digest", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DevCertArgs {
    /// Directory to write into
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// File stem: writes <name>.crt and <name>.key
    #[arg(long, default_value = "dev")]
    pub name: String,
    /// Names the certificate is valid for (DNS names or IP addresses)
    #[arg(long = "host", default_values = ["localhost", "127.0.0.1", "::1"])]
    pub hosts: Vec<String>,
    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
}
