//! `cutover dev-cert` — a self-signed certificate and key for local TLS.
//!
//! For development only: browsers will warn, and the key is written unencrypted
//! (mode 0600). `certs/.gitignore` keeps it out of the repository.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::cli::DevCertArgs;

use super::{Exit, UsageError};

pub fn run(args: DevCertArgs) -> anyhow::Result<Exit> {
    let cert_path = args.dir.join(format!("{}.crt", args.name));
    let key_path = args.dir.join(format!("{}.key", args.name));
    if !args.force && (cert_path.exists() || key_path.exists()) {
        return Err(UsageError(format!(
            "{} or {} already exists; pass --force to overwrite",
            cert_path.display(),
            key_path.display()
        ))
        .into());
    }
    let certified = rcgen::generate_simple_self_signed(args.hosts.clone())
        .context("generating a self-signed certificate")?;
    fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    fs::write(&cert_path, certified.cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())
        .with_context(|| format!("writing {}", key_path.display()))?;
    println!(
        "wrote {} and {} (valid for: {})",
        cert_path.display(),
        key_path.display(),
        args.hosts.join(", ")
    );
    Ok(Exit::Success)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
