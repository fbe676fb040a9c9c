//! One module per `bundler` subcommand, each with its argument struct and one entry function,
//! plus the argument groups several commands share.

pub mod build;
pub mod keygen;
pub mod plan;
pub mod progress;
pub mod pypi;
pub mod pypi_args;
pub mod selection;
