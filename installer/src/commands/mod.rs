//! One module per subcommand: its arguments and one entry function returning the exit status
//! (see `exit`).

pub mod apply;
pub mod exit;
pub mod inspect;
pub mod nat;
pub mod node;
pub mod site;
pub mod status;
pub mod verify;

use std::path::PathBuf;

use bundle::IoMode;
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use installer::site::{FlagOverride, SiteConfig};

/// `--io`, shared by the commands that read a whole bundle.
#[derive(Args, Debug)]
pub struct IoArg {
    /// How the bundle is read and unpacked: `direct` bypasses the page cache (O_DIRECT, falling
    /// back to buffered where the filesystem refuses it), `buffered` goes through it like any
    /// program. See docs/BENCHMARKS.md for when each is faster.
    #[arg(
        long = "io",
        value_name = "MODE",
        env = bundle::IO_MODE_ENV,
        default_value_t = IoMode::default(),
        value_parser = PossibleValuesParser::new(IoMode::NAMES)
            .map(|name| name.parse::<IoMode>().expect("one of the listed names")),
    )]
    pub mode: IoMode,
}

/// The site file and command-line overrides, shared by every command that needs the site.
#[derive(Args, Debug)]
pub struct SiteArgs {
    /// Site file (TOML); without it the reference topology is used.
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// Override one setting, e.g. `--set dns.port=5353` or `--set 'dns.forwarders=["10.0.0.1"]'`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl SiteArgs {
    pub fn load(&self) -> anyhow::Result<SiteConfig> {
        self.load_with_flags(&[])
    }

    /// The site with a command's own flags (`--http-port`, `--data-root`) applied over `--set`
    /// before validation, so a flag is refused exactly like the setting it stands for.
    pub fn load_with_flags(&self, flags: &[FlagOverride]) -> anyhow::Result<SiteConfig> {
        Ok(SiteConfig::load_with_flags(
            self.site.as_deref(),
            &self.overrides,
            flags,
        )?)
    }
}

/// Take the installer's lock on `dir` for this command (see `installer::lock`): every command
/// that writes the admin's tree holds it for its whole run.
pub fn lock(dir: &std::path::Path) -> anyhow::Result<installer::lock::DirLock> {
    Ok(installer::lock::DirLock::acquire(
        dir,
        &installer::lock::this_command(),
    )?)
}

/// The data root as this process sees it (`--root` applied), the directory apply and nat lock.
pub fn data_dir(root: &std::path::Path, site: &SiteConfig) -> anyhow::Result<PathBuf> {
    Ok(installer::fsutil::rooted(root, &site.data_root)?)
}

/// Prints what happened to one written file.
pub fn print_installed(installed: &installer::fsutil::Installed) {
    use installer::fsutil::FileChange;
    let path = installed.path.display();
    match (&installed.change, &installed.backup) {
        (FileChange::Unchanged, _) => println!("unchanged  {path}"),
        (FileChange::Create, _) => println!("created    {path}"),
        (FileChange::Modify { .. }, Some(b)) => {
            println!("replaced   {path} (original kept as {})", b.display())
        }
        (FileChange::Modify { .. }, None) => println!("replaced   {path}"),
    }
}
