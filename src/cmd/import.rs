//! `cutover import` — not implemented yet (issue: load a Clerk export into Kernia).

use crate::cli::ImportArgs;

use super::Exit;

pub async fn run(_args: ImportArgs) -> anyhow::Result<Exit> {
    eprintln!("cutover import: not implemented yet");
    Ok(Exit::Failure)
}
