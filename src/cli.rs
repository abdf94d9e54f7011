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
    /// Show migration progress: states, hashers, methods, per day, active coverage, stragglers
    Status(StatusArgs),
    /// The live rollout shared by every copy: show, change, kill switch, overrides, history
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Users not migrated yet, for the end of the window
    Stragglers(StragglersArgs),
    /// Send password-reset links in bulk to users not migrated yet (end of the window)
    ResetCampaign(ResetCampaignArgs),
    /// Write a self-signed certificate and key for local TLS
    DevCert(DevCertArgs),
    /// Run the pre-cutover checklist against a running deployment (staging)
    Validate(ValidateArgs),
    /// Outgoing webhooks and queued deliveries: list, replay, send a test, enable
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
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

/// `cutover import`: what to read, and how.
///
/// Give the dashboard CSV export (`--csv`, the only source of password digests
/// and TOTP secrets) and Backend API JSON files, or pull those from the Backend
/// API with `--from-clerk-api`. An interrupted run started again with the same
/// inputs resumes; a finished one changes nothing when run again.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The dashboard CSV export (Clerk: Settings → User exports)
    #[arg(long, value_name = "FILE")]
    pub csv: Vec<PathBuf>,
    /// Backend API users, saved `GET /v1/users` pages (bare JSON arrays)
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub users: Vec<PathBuf>,
    /// Backend API organizations (`{data, total_count}` pages)
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub organizations: Vec<PathBuf>,
    /// Backend API organization memberships (`GET /v1/organization_memberships` pages)
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub memberships: Vec<PathBuf>,
    /// Backend API organization invitations (only pending, unexpired ones move)
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub invitations: Vec<PathBuf>,
    /// First pull users, organizations, memberships and pending invitations from
    /// the Backend API ([import] clerk_api_url; key from [import] clerk_secret_key_env)
    #[arg(long)]
    pub from_clerk_api: bool,
    /// Where pulled pages are saved; an interrupted pull resumes from them
    #[arg(long, value_name = "DIR", default_value = "clerk-api-export")]
    pub api_dir: PathBuf,
    /// Also write a JSON report: counts per entity, state and hasher; every issue
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Check and count everything, write nothing (one transaction, rolled back)
    #[arg(long)]
    pub dry_run: bool,
    /// Stop at the first bad record instead of reporting it and going on
    #[arg(long)]
    pub strict: bool,
    /// Start over instead of resuming an interrupted run of the same inputs
    #[arg(long)]
    pub restart: bool,
    /// Users (or records) per transaction [default: [import] batch_size]
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Batches written at once on PostgreSQL, each on its own connection
    /// (SQLite and --dry-run: one) [default: [import] writers]
    #[arg(long, value_name = "N")]
    pub writers: Option<usize>,
    /// Directory for the run's private temporary files [default: the system's]
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Memory the sort of users may use before spilling to disk, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub sort_memory_mb: usize,
    /// Progress display
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
}

/// How `cutover import` shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    /// A bar on a terminal, plain lines otherwise
    Auto,
    Bar,
    Plain,
    None,
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
    /// Users seen through cutover within this many days count as active
    #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub active_days: i64,
}

/// `cutover rollout …`: every change goes to the database (versioned, with a
/// reason, in the audit trail) and reaches every running copy within a second.
/// No admin port needed: the database named in the configuration is enough.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Print the rollout every copy routes by (and the file's [rollout], if different)
    Show(RolloutShowArgs),
    /// Change the percentage (raising only adds users; lowering says how many go back)
    Set(RolloutSetArgs),
    /// Pull the kill switch: everyone without a Kernia session goes to legacy
    Kill(RolloutKillArgs),
    /// Release the kill switch
    Resume(RolloutResumeArgs),
    /// Send a user, email domain or organization to Kernia regardless of the percentage
    Allow(RolloutOverrideArgs),
    /// Keep a user, email domain or organization on legacy regardless of the percentage
    Deny(RolloutOverrideArgs),
    /// List the changes: when, what, from → to, why, through which interface
    History(RolloutHistoryArgs),
}

#[derive(Debug, Args)]
pub struct RolloutShowArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RolloutSetArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Share of users sent to Kernia, 0–100 (fractions allowed)
    #[arg(long, value_name = "P")]
    pub percentage: Option<f64>,
    /// Send migrated users still on a Clerk session to sign in at Kernia
    #[arg(long, value_name = "BOOL")]
    pub reauth_migrated_clerk_sessions: Option<bool>,
    /// Why (kept in the audit trail)
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct RolloutKillArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Why (kept in the audit trail)
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct RolloutResumeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Why (kept in the audit trail)
    #[arg(long, default_value = "kill switch released")]
    pub reason: String,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("subject").required(true).multiple(false))]
pub struct RolloutOverrideArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A user id (user_…)
    #[arg(long, value_name = "ID", group = "subject")]
    pub user: Option<String>,
    /// An email domain (example.com)
    #[arg(long, value_name = "D", group = "subject")]
    pub domain: Option<String>,
    /// An organization id (org_…)
    #[arg(long, value_name = "ID", group = "subject")]
    pub org: Option<String>,
    /// Take the entry off the list instead
    #[arg(long)]
    pub remove: bool,
    /// Why (kept in the audit trail)
    #[arg(long, default_value = "")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct RolloutHistoryArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// How many changes, newest first
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10000))]
    pub limit: i64,
    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// `cutover stragglers`: users not migrated yet (pending password, pending
/// reset, social only), with when cutover last saw them.
#[derive(Debug, Args)]
pub struct StragglersArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Write them as CSV to FILE (`-` for standard output)
    #[arg(long, value_name = "FILE")]
    pub export: std::path::PathBuf,
    /// Only users not seen through cutover on or after DATE (YYYY-MM-DD), or never
    #[arg(long, value_name = "DATE")]
    pub inactive_since: Option<String>,
}

/// `cutover reset-campaign`: a reset link to every selected user not migrated
/// yet, queued in the outbox (delivered by the running `cutover serve`
/// copies), at most one per user however often it runs.
#[derive(Debug, Args)]
pub struct ResetCampaignArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Which users: by ledger state (repeat for both)
    #[arg(long = "state", value_enum, required = true)]
    pub states: Vec<CampaignState>,
    /// Only users not seen through cutover on or after DATE (YYYY-MM-DD), or never
    #[arg(long, value_name = "DATE")]
    pub inactive_since: Option<String>,
    /// How fast links are queued: N/s, N/m or N/h
    #[arg(long, default_value = "5/s", value_name = "N/s")]
    pub rate: String,
    /// Send again to users whose last reset is older than DAYS (default: never again)
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub resend_after_days: Option<u32>,
    /// Count who would get a link; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// The ledger states a reset campaign can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CampaignState {
    #[value(name = "pending_password")]
    PendingPassword,
    #[value(name = "pending_reset")]
    PendingReset,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::PendingPassword => "pending_password",
            CampaignState::PendingReset => "pending_reset",
        }
    }
}

/// `cutover validate`: the checklist of a plan file, through cutover's public address.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The plan (TOML): base_url, checks, manual checks; see `cutover validate --help`
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Print JSON for CI
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

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Queued and past deliveries (newest first), queue depth, disabled endpoints
    List(WebhooksListArgs),
    /// Send the webhook events of a time range again (same svix-id)
    Replay(WebhooksReplayArgs),
    /// Queue a `cutover.test` event to every configured endpoint
    SendTest(WebhooksSendTestArgs),
    /// Turn a disabled endpoint back on; its waiting deliveries go out
    Enable(WebhooksEnableArgs),
}

#[derive(Debug, Args)]
pub struct WebhooksListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only rows in this state
    #[arg(long, value_parser = ["pending", "delivered", "failed"])]
    pub status: Option<String>,
    /// Only this event type, e.g. user.created
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: Option<String>,
    /// Only rows created at or after TIME (RFC 3339, or a duration ago such as 2h, 30m, 7d)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// At most this many rows
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Print JSON lines for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WebhooksReplayArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Events created at or after TIME (RFC 3339, or a duration ago such as 2h, 30m, 7d)
    #[arg(long, value_name = "TIME")]
    pub since: String,
    /// … and before TIME
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only these event types (repeat the flag)
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only to this configured endpoint URL [default: every configured endpoint]
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// At most this many events
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub limit: u32,
    /// Show what would be sent, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct WebhooksSendTestArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args)]
pub struct WebhooksEnableArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The endpoint URL (or reset-mail / reset-webhook)
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
}
