//! One module per `bundler` subcommand, each with its clap argument struct and one `run`
//! function; `finish` turns a command's result into the documented exit status.

use std::process::ExitCode;

/// Prints the error chain on stderr and maps it to the exit status: 0 success, 1 operational
/// failure, 3 verification failure (a fetched or packed file failed its checksum or signature
/// check). Clap exits with 2 on usage errors before any command runs.
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
    if bundle::BundleError::in_chain(err.as_ref()) {
        3
    } else {
        1
    }
}

pub mod build;
pub mod keygen;
pub mod plan;
pub mod progress;
pub mod pypi;
pub mod pypi_args;
pub mod selection;

/// `finish` for the commands whose library errors carry their own exit status
/// ([`bundler::build::BuildError::exit_code`]: 1 operational, 2 usage, 3 verification).
pub fn finish_build(result: Result<(), bundler::build::BuildError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code() as u8)
        }
    }
}
