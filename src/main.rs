//! The `s3ferry` binary: parses the arguments and runs the command. Everything else is in
//! [`cli`] (the commands) and the `s3ferry` library (the gateway).

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    cli::run(cli::Cli::parse())
}
