//! One module per subcommand: its arguments and one entry function returning the exit code.

pub mod apply;
