//! The `cutover` binary: parse the command line, run one subcommand, turn its
//! result into an exit status. Everything else lives in the library.
#![forbid(unsafe_code)]

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = cutover::cli::Cli::parse();
    cutover::cmd::run(cli)
}
