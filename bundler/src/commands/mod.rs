//! One module per `bundler` subcommand (argument struct + entry function), plus argument
//! groups shared by several commands.

pub mod pypi;
pub mod pypi_args;
