//! Writes a synthetic Clerk export of any size for the import benchmark
//! (`scripts/bench-import.sh`) and for trying `cutover import` locally: a
//! dashboard CSV and Backend API JSON pages, shaped as Clerk's, with a mix of
//! hashers, social-only users, TOTP, backup codes, passkeys, organizations,
//! memberships (custom roles included) and invitations (expired ones included).
//!
//! Usage: `gen_clerk_export <users> <dir> [organizations] [members-per-org] [users-per-page] [seed]`

use cutover::import::synth::{SynthOptions, generate};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (Some(users), Some(dir)) = (
        args.first().and_then(|a| a.parse::<u64>().ok()),
        args.get(1),
    ) else {
        eprintln!(
            "usage: gen_clerk_export <users> <dir> [organizations] [members-per-org] [users-per-page] [seed]"
        );
        std::process::exit(2);
    };
    let mut opts = SynthOptions::new(users);
    opts.organizations = num(2, users / 50);
    opts.members_per_org = num(3, 5);
    opts.page_size = num(4, 10_000);
    opts.seed = num(5, 1);
    let started = std::time::Instant::now();
    match generate(&opts, std::path::Path::new(dir)) {
        Ok(files) => {
            println!("{}", files.csv.display());
            for f in &files.users {
                println!("{}", f.display());
            }
            println!(
                "{}\n{}\n{}",
                files.organizations.display(),
                files.memberships.display(),
                files.invitations.display()
            );
            eprintln!(
                "gen_clerk_export: {users} users, {} organizations in {:.1}s",
                opts.organizations,
                started.elapsed().as_secs_f64()
            );
        }
        Err(e) => {
            eprintln!("gen_clerk_export: {e}");
            std::process::exit(1);
        }
    }
}
