//! The installer's exit status, decided here and nowhere else: every command returns
//! `anyhow::Result<ExitStatus>` and `main` turns that into the process status once, so the
//! numbers in `--help` and the README cannot drift apart from what a command does.

use std::process::ExitCode;

use installer::apply::ApplyError;
use installer::site::SiteError;

/// 0 success, 1 operational failure, 2 usage (bad flags, bad site values), 3 verification
/// failure (the bundle is at fault). Clap exits with 2 itself for flags it cannot parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
    Usage,
    Verification,
}

impl ExitStatus {
    /// The status of a finished command; an error is printed on stderr with its chain, each
    /// cause once.
    pub fn of(result: anyhow::Result<ExitStatus>) -> ExitStatus {
        match result {
            Ok(status) => status,
            Err(err) => {
                eprintln!("error: {}", bundle::error::chain_message(err.as_ref()));
                ExitStatus::classify(&err)
            }
        }
    }

    /// The first error in the chain that says who is at fault decides: the bundle
    /// (verification) or the command line and site file (usage); anything else is operational.
    fn classify(err: &anyhow::Error) -> ExitStatus {
        for e in err.chain() {
            if let Some(e) = e.downcast_ref::<bundle::BundleError>() {
                if e.is_verification_failure() {
                    return ExitStatus::Verification;
                }
            } else if let Some(e) = e.downcast_ref::<ApplyError>() {
                if e.is_verification_failure() {
                    return ExitStatus::Verification;
                }
            } else if let Some(e) = e.downcast_ref::<SiteError>() {
                // A site file that cannot be read is an I/O failure; every other site error
                // is a value the operator gave.
                if !matches!(e, SiteError::Read { .. }) {
                    return ExitStatus::Usage;
                }
            }
        }
        ExitStatus::Failure
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Verification => 3,
        })
    }
}
