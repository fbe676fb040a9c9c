//! `installer status`: check every admin service with a real query and print a table or JSON.

use std::path::PathBuf;

use clap::Args;
use installer::status;

use super::SiteArgs;
use super::exit::ExitStatus;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  installer status\n  installer status --site site.toml --json\n\nExits 1 when any check fails."
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Where the persistent NAT state lives (the admin's /).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitStatus> {
    let site = args.site.load()?;
    let report = status::run(&site, &args.root);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let width = report
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(4);
        for c in &report.checks {
            let mark = if c.passed { "pass" } else { "FAIL" };
            println!("{mark}  {:<width$}  {}  {}", c.name, c.target, c.detail);
            if let Some(hint) = &c.hint {
                println!("      {:<width$}  hint: {hint}", "");
            }
        }
    }
    Ok(if report.passed {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
