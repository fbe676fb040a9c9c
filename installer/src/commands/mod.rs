//! One module per subcommand: its arguments and one entry function returning the exit code.

pub mod apply;
pub mod inspect;
pub mod nat;
pub mod node;
pub mod site;
pub mod status;
pub mod verify;

use std::path::PathBuf;

use clap::Args;
use installer::site::SiteConfig;

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
        Ok(SiteConfig::load(self.site.as_deref(), &self.overrides)?)
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

/// The exit status for an error: 3 when any error in the chain is a bundle verification failure
/// (damaged, tampered or hostile bundle, bad or missing signature, newer format), else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if bundle::BundleError::in_chain(err.as_ref()) {
        3
    } else {
        1
    }
}
