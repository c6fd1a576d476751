//! berth: run a Compose stack natively, with supervision, health gating,
//! logs and a built-in edge proxy, from one binary.
//!
//! `main` parses the command line, runs the subcommand and maps its outcome
//! to an exit code: 0 success, 1 runtime failure, 2 usage or configuration
//! error, 130 interrupted.

mod api;
mod cli;
mod edge;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == berth_engine::guard::GUARD_ARG)
    {
        berth_engine::guard::run();
        return ExitCode::SUCCESS;
    }
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == berth_engine::contain::INIT_ARG)
    {
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
        berth_engine::contain::init_main(&args);
    }
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
