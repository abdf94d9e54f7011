//! `cutover hash verify` — not implemented yet (issue: lazy password migration).

use crate::cli::HashCommand;

use super::Exit;

pub fn run(_args: HashCommand) -> anyhow::Result<Exit> {
    eprintln!("cutover hash: not implemented yet");
    Ok(Exit::Failure)
}
