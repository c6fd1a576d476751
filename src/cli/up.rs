//! `berth up`: run the stack in the foreground, logs multiplexed on the
//! terminal, until Ctrl-C (graceful; a second Ctrl-C forces) or until
//! nothing runs any more.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use berth_engine::{NativeRuntime, Settled, Stack, UpOptions, logs::LogHub};
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use super::{Failure, Global, load};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Replicas of a service, overriding the file (repeatable)
    #[arg(long, value_name = "SERVICE=N", value_parser = parse_scale)]
    scale: Vec<(String, u32)>,
    /// Do not run the services' x-berth.build steps
    #[arg(long)]
    no_build: bool,
    /// Prefix log lines with timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Logs as JSON lines
    #[arg(long)]
    json: bool,
    /// Services to start, with their dependencies (default: all)
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
}

fn parse_scale(s: &str) -> Result<(String, u32), String> {
    let (name, n) = s
        .split_once('=')
        .ok_or_else(|| format!("expected SERVICE=N, got {s:?}"))?;
    let n = n
        .parse()
        .map_err(|_| format!("{n:?} is not a replica count"))?;
    Ok((name.to_string(), n))
}

pub fn run(global: &Global, args: UpArgs) -> Result<(), Failure> {
    let options = global.load_options(&args.services)?;
    let loaded = load(&options)?;
    let mut project = loaded.project;
    if !args.services.is_empty() {
        keep_with_dependencies(&mut project, &args.services);
    }
    for (name, _) in &args.scale {
        if !project.services.contains_key(name) {
            return Err(Failure::Usage(format!("--scale {name}=…: no such service")));
        }
    }
    let inherited: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let plans = berth_engine::plan(&project, &inherited).map_err(|errors| {
        Failure::Usage(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\nberth: "),
        )
    })?;

    let state_dir = project.settings.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    let _lock = super::lock::acquire(&state_dir, &project.name)?;

    let exe = std::env::current_exe().context("cannot find the berth executable")?;
    berth_engine::guard::start(&exe).context("cannot start the guard process")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let options = UpOptions {
        scale: args.scale.iter().cloned().collect(),
        build: !args.no_build,
    };
    let printer = super::printer::Printer {
        color: !global.no_color && super::stdout_color(),
        timestamps: args.timestamps,
        json: args.json,
    };
    runtime.block_on(async move {
        let logs = LogHub::new(state_dir.join("logs"))
            .with_context(|| format!("cannot write logs under {}", state_dir.display()))?;
        let printing = printer.spawn(logs.subscribe());
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;

        let start = Stack::start(
            &project.name,
            plans,
            Arc::new(NativeRuntime),
            logs.clone(),
            &options,
        );
        let stack = tokio::select! {
            s = start => s.map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))?,
            _ = interrupt.recv() => return Err(Failure::Interrupted),
            _ = terminate.recv() => return Err(Failure::Interrupted),
        };
        for (service, target, addr) in &stack.listening {
            logs.system(
                "berth",
                0,
                format!("{service}: port {target} listening on {addr}"),
            );
        }
        let outcome = tokio::select! {
            settled = stack.settled() => Ok(settled),
            _ = interrupt.recv() => Err(()),
            _ = terminate.recv() => Err(()),
        };
        let result = match outcome {
            Ok(Settled::Failed(failures)) => {
                for f in &failures {
                    logs.system("berth", 0, format!("failed: {f}"));
                }
                logs.system("berth", 0, "stopping the stack");
                stop(&stack, &mut interrupt, &mut terminate).await;
                Err(Failure::Runtime(anyhow::anyhow!(
                    "the stack did not start: {}",
                    failures.join("; ")
                )))
            }
            Ok(Settled::Finished { success }) => {
                stop(&stack, &mut interrupt, &mut terminate).await;
                if success {
                    Ok(())
                } else {
                    Err(Failure::Runtime(anyhow::anyhow!(
                        "every service has exited, some with an error"
                    )))
                }
            }
            Err(()) => {
                logs.system("berth", 0, "stopping (press Ctrl-C again to force)");
                stop(&stack, &mut interrupt, &mut terminate).await;
                Err(Failure::Interrupted)
            }
        };
        drop(logs);
        drop(stack);
        let _ = printing.finish();
        let _ = std::io::stdout().flush();
        result
    })
}

/// Stops the stack; a further signal skips the grace periods.
async fn stop(
    stack: &Arc<Stack>,
    interrupt: &mut tokio::signal::unix::Signal,
    terminate: &mut tokio::signal::unix::Signal,
) {
    let stopping = stack.stop();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            () = &mut stopping => return,
            _ = interrupt.recv() => stack.force(),
            _ = terminate.recv() => stack.force(),
        }
    }
}

/// Keeps the named services and everything they depend on.
fn keep_with_dependencies(project: &mut berth_compose::Project, names: &[String]) {
    let mut keep: Vec<String> = Vec::new();
    let mut stack: Vec<String> = names.to_vec();
    while let Some(n) = stack.pop() {
        if keep.contains(&n) {
            continue;
        }
        if let Some(s) = project.services.get(&n) {
            stack.extend(s.depends_on.keys().cloned());
        }
        keep.push(n);
    }
    project.services.retain(|k, _| keep.contains(k));
}
