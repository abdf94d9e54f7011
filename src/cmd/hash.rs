//! `cutover hash verify --hasher NAME --digest DIGEST`: check a password read
//! from standard input against one exported digest.
//!
//! Scripts depend on this contract exactly:
//! - the password is all of standard input minus exactly one trailing line
//!   ending (`\n` or `\r\n`), so `echo pw |` works and a password ending in
//!   spaces or in a newline of its own is still expressible;
//! - exit 0 when it matches (prints `match`), 1 when it does not (prints
//!   `mismatch`), 2 when the hasher is unknown or unsupported, the digest is
//!   malformed or over a work-factor cap, or stdin cannot be read — the
//!   reason on stderr, never the digest or the password;
//! - no configuration file and no database; default [`Caps`].

use std::io::Read as _;

use crate::cli::{HashCommand, HashVerifyArgs};
use crate::hash::{self, Caps};

use super::{Exit, UsageError};

pub fn run(command: HashCommand) -> anyhow::Result<Exit> {
    match command {
        HashCommand::Verify(args) => verify(args),
    }
}

fn verify(args: HashVerifyArgs) -> anyhow::Result<Exit> {
    // Read the password first, so a writer piping it in never meets a closed
    // pipe, whatever the outcome.
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| {
            UsageError(format!(
                "hash verify: cannot read the password from stdin: {e}"
            ))
        })?;
    let digest = hash::parse(&args.hasher, &args.digest, &Caps::default())
        .map_err(|e| UsageError(format!("hash verify: {e}")))?;
    if digest.verify(strip_one_line_ending(&input)) {
        println!("match");
        Ok(Exit::Success)
    } else {
        println!("mismatch");
        Ok(Exit::Failure)
    }
}

/// Remove one trailing `\r\n` or `\n`, and nothing else.
fn strip_one_line_ending(input: &[u8]) -> &[u8] {
    input
        .strip_suffix(b"\r\n")
        .or_else(|| input.strip_suffix(b"\n"))
        .unwrap_or(input)
}

#[cfg(test)]
mod tests {
    use super::strip_one_line_ending as strip;

    #[test]
    fn strips_exactly_one_line_ending() {
        assert_eq!(strip(b"pw\n"), b"pw");
        assert_eq!(strip(b"pw\r\n"), b"pw");
        assert_eq!(strip(b"pw\n\n"), b"pw\n");
        assert_eq!(strip(b"pw\r\n\r\n"), b"pw\r\n");
        assert_eq!(strip(b"pw \n"), b"pw ");
        assert_eq!(strip(b"pw "), b"pw ");
        assert_eq!(strip(b"pw\r"), b"pw\r");
        assert_eq!(strip(b"\n"), b"");
        assert_eq!(strip(b""), b"");
    }
}
