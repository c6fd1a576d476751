//! berth: run a Compose stack natively, with supervision, health gating,
//! logs and a built-in edge proxy, from one binary.
//!
//! `main` parses the command line, runs the subcommand and maps its outcome
//! to an exit code: 0 success, 1 runtime failure, 2 usage or configuration
//! error, 130 interrupted.

mod api;
mod backup;
mod cli;
mod dashboard;
mod edge;
mod notices;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: per-thread free lists make the proxy's small per-request
/// allocations a few dozen instructions each (glibc's cost over 200).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == berth_engine::guard::GUARD_ARG)
    {
        if let Some(project) = berth_engine::guard::run() {
            remove_containers(&project);
        }
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

/// The guard's last step when berth is gone: the project's containers and
/// network are removed.
fn remove_containers(project: &str) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        if let Ok(docker) = berth_engine::runtime::docker::DockerRuntime::connect(project).await {
            docker.finish().await;
        }
    });
}
