//! `berth restart`, `stop`, `start` and `scale` on a running stack.

use clap::Args;

use super::{Failure, Global, connect, print_stdout};
use crate::api::{Report, Scale, Services};

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Services (default: all)
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// SERVICE=N pairs
    #[arg(value_name = "SERVICE=N", required = true, value_parser = super::parse_scale)]
    scale: Vec<(String, u32)>,
}

fn post(global: &Global, path: &str, body: &impl serde::Serialize) -> Result<(), Failure> {
    let (client, _) = connect(global)?;
    let report: Report = super::block_on(client.post(path, body))?;
    let mut text = report.lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    print_stdout(&text)
}

pub fn restart(global: &Global, args: ServicesArgs) -> Result<(), Failure> {
    post(
        global,
        "/v1/restart",
        &Services {
            services: args.services,
        },
    )
}

pub fn stop(global: &Global, args: ServicesArgs) -> Result<(), Failure> {
    post(
        global,
        "/v1/stop",
        &Services {
            services: args.services,
        },
    )
}

pub fn start(global: &Global, args: ServicesArgs) -> Result<(), Failure> {
    post(
        global,
        "/v1/start",
        &Services {
            services: args.services,
        },
    )
}

pub fn scale(global: &Global, args: ScaleArgs) -> Result<(), Failure> {
    post(
        global,
        "/v1/scale",
        &Scale {
            scale: args.scale.into_iter().collect(),
        },
    )
}
