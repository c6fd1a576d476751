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
