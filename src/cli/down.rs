//! `berth down [-v] [--timeout S]`: stop a running stack gracefully in
//! reverse dependency order (wherever its `up` runs); `-v` also deletes the
//! named volumes.

use clap::Args;

use super::{Failure, Global, print_stdout};
use crate::api::client::ClientError;
use crate::api::{Down, Report};

/// How long `down` waits, after the stack said it stopped, for its process
/// to end.
const GONE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also delete named volumes
    #[arg(short, long)]
    volumes: bool,
    /// Seconds to wait for each service to stop before killing it
    #[arg(short, long, value_name = "SECONDS")]
    timeout: Option<u64>,
}

pub fn run(global: &Global, args: DownArgs) -> Result<(), Failure> {
    let options = global.load_options(&[])?;
    let loaded = super::load_quiet(&options)?;
    let project = loaded.project;
    let client = crate::api::client::Client::new(&project.settings.state_dir, &project.name);
    let down = Down {
        timeout: args.timeout,
        volumes: args.volumes,
    };
    match super::block_on_raw(client.post::<_, Report>("/v1/down", &down))? {
        Ok(report) => {
            // Return once the stack process is really gone.
            super::lock::wait_released(&project.settings.state_dir, GONE_WITHIN);
            let mut text = report.lines.join("\n");
            text.push('\n');
            print_stdout(&text)
        }
        Err(ClientError::NotRunning { .. }) => {
            // Nothing runs; `-v` still removes the volumes.
            super::lock::sweep_if_stopped(&project.settings.state_dir);
            let mut lines = vec![format!("project {} is not running", project.name)];
            if args.volumes {
                lines.extend(super::volumes::remove(&project));
                lines.extend(super::block_on_raw(super::volumes::remove_docker(
                    &project,
                ))?);
            }
            print_stdout(&(lines.join("\n") + "\n"))
        }
        Err(e) => Err(Failure::Runtime(anyhow::anyhow!("{e}"))),
    }
}
