//! The `cutover` binary: parse the command line, run one subcommand, turn its
//! result into an exit status. Everything else lives in the library.
#![forbid(unsafe_code)]

use clap::Parser as _;

/// mimalloc instead of glibc's allocator: a measured decision. Under the
/// proxy benchmark it cut cutover's CPU per proxied request by about a tenth
/// (cached Clerk token 66 → 60 µs, 20,000 distinct tokens 208 → 182 µs on the
/// 2-core machine, `docs/BENCHMARKS.md`); glibc's `malloc`/`free` had been the
/// largest user-space cost in the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cutover::cli::Cli::parse();
    cutover::cmd::run(cli)
}
