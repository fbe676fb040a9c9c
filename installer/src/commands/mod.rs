//! One module per `installer` subcommand, each with its clap argument struct and one `run`
//! function; `finish` turns a command's result into the documented exit status.

use std::process::ExitCode;

pub mod inspect;
pub mod verify;

/// Prints the error chain on stderr and maps it to the exit status: 0 success, 1 operational
/// failure (I/O, missing file, destination exists), 3 verification failure (damaged, tampered or
/// hostile bundle, bad or missing signature, bundle format newer than this installer). Clap
/// exits with 2 on usage errors before any command runs.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// 3 when any error in the chain is a bundle verification failure, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let verification = err.chain().any(|cause| {
        cause
            .downcast_ref::<bundle::BundleError>()
            .is_some_and(bundle::BundleError::is_verification_failure)
    });
    if verification { 3 } else { 1 }
}
