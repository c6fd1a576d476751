//! `berth exec SERVICE [--replica N] -- CMD…`: a command with a replica's
//! environment and working directory; stdin, stdout and the exit code pass
//! through.

use std::process::Command;

use clap::Args;

use super::{Failure, Global, connect};
use crate::api::ExecTarget;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The service whose environment to use
    service: String,
    /// Which replica (default: the first)
    #[arg(long, value_name = "N")]
    replica: Option<u32>,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(global: &Global, args: ExecArgs) -> Result<(), Failure> {
    let (client, _) = connect(global)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("service", &args.service);
    if let Some(r) = args.replica {
        query.append_pair("replica", &r.to_string());
    }
    let path = format!("/v1/exec?{}", query.finish());
    let target: ExecTarget = super::block_on(client.get(&path))?;
    if let Some(c) = &target.container {
        return in_container(c, &args);
    }
    let status = Command::new(&args.command[0])
        .args(&args.command[1..])
        .env_clear()
        .envs(&target.env)
        .current_dir(&target.working_dir)
        .status()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot run {}: {e}", args.command[0])))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Failure::Exit(code)),
        None => Err(Failure::Exit(1)),
    }
}

/// `docker exec` into the replica's container, through the engine's API:
/// stdin, stdout, stderr and the exit code pass through.
fn in_container(c: &crate::api::ExecContainer, args: &ExecArgs) -> Result<(), Failure> {
    let code = super::block_on_raw(async {
        let docker = berth_engine::runtime::docker::DockerRuntime::connect(&c.project).await?;
        // Piped input is passed on; a terminal is not read (nothing would
        // end it), as `docker exec` without -i.
        let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> =
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                Box::new(tokio::io::empty())
            } else {
                Box::new(tokio::io::stdin())
            };
        docker
            .exec_attached(&args.service, c.replica, args.command.clone(), input)
            .await
    })?
    .map_err(|e| {
        Failure::Runtime(anyhow::anyhow!(
            "exec in {}-{}: {e}",
            args.service,
            c.replica
        ))
    })?;
    match code {
        0 => Ok(()),
        code => Err(Failure::Exit(i32::try_from(code).unwrap_or(1))),
    }
}
