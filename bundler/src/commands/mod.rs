//! One module per `bundler` subcommand, each with its argument struct and one entry function.

pub mod build;
pub mod plan;
pub mod progress;
pub mod selection;
