//! The bundler's exit status, decided here and nowhere else: `main` hands every command's
//! result to `ExitStatus::of` or `of_build`, which print the error and classify it once, so the
//! numbers in `--help` and the README cannot drift apart from what a command does.

use std::error::Error;
use std::process::ExitCode;

use bundler::build::BuildError;
use bundler::release::ReleaseError;

/// 0 success, 1 operational failure, 2 usage (bad flags, a release or package set this bundler
/// does not know), 3 verification failure (a fetched or packed file failed its checksum or
/// signature check). Clap exits with 2 itself for flags it cannot parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
    Usage,
    Verification,
}

impl ExitStatus {
    /// The status of a command whose error is an `anyhow` chain, printed whole on stderr
    /// (each cause once).
    pub fn of(result: anyhow::Result<()>) -> ExitStatus {
        match result {
            Ok(()) => ExitStatus::Success,
            Err(err) => {
                eprintln!("error: {}", bundle::error::chain_message(err.as_ref()));
                ExitStatus::classify(err.as_ref())
            }
        }
    }

    /// The status of a build-side command, its error printed with its causes (each once).
    pub fn of_build(result: Result<(), BuildError>) -> ExitStatus {
        match result {
            Ok(()) => ExitStatus::Success,
            Err(err) => {
                eprintln!("error: {}", bundle::error::chain_message(&err));
                ExitStatus::classify(&err)
            }
        }
    }

    /// The first error in the chain that says who is at fault decides; anything else is an
    /// operational failure.
    fn classify(err: &(dyn Error + 'static)) -> ExitStatus {
        for e in std::iter::successors(Some(err), |&e| e.source()) {
            if let Some(e) = e.downcast_ref::<BuildError>() {
                return ExitStatus::of_build_error(e);
            }
            if e.downcast_ref::<bundle::BundleError>()
                .is_some_and(bundle::BundleError::is_verification_failure)
            {
                return ExitStatus::Verification;
            }
        }
        ExitStatus::Failure
    }

    /// Verification: a wrong checksum from every mirror, a bad or missing package or metadata
    /// signature, a key that does not match its pin, a registry's manifest the bundle cannot
    /// take, another minor release than asked for. Usage: a bad flag value, an unknown release.
    fn of_build_error(err: &BuildError) -> ExitStatus {
        match err {
            BuildError::Fetch(e) if e.is_checksum_failure() => ExitStatus::Verification,
            BuildError::Image { source, .. } if source.is_checksum_failure() => {
                ExitStatus::Verification
            }
            BuildError::ImageInvalid(_) => ExitStatus::Verification,
            BuildError::Pypi(e) if e.is_verification() => ExitStatus::Verification,
            BuildError::Meta(e) if e.is_verification() => ExitStatus::Verification,
            BuildError::Bundle(e) if e.is_verification_failure() => ExitStatus::Verification,
            BuildError::Usage(_)
            | BuildError::Release(
                ReleaseError::NotFound { .. } | ReleaseError::NoPackageSet { .. },
            ) => ExitStatus::Usage,
            _ => ExitStatus::Failure,
        }
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
