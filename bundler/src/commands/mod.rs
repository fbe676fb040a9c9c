//! One module per `bundler` subcommand, each with its clap argument struct and one `run`
//! function; `exit` turns a command's result into the documented exit status.

pub mod build;
pub mod exit;
pub mod keygen;
pub mod plan;
pub mod pypi;
pub mod pypi_args;
pub mod selection;
