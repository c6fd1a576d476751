//! `berth exec SERVICE [--replica N] [-t|-T] -- CMD…`: a command with a
//! replica's environment and working directory; stdin, stdout and the exit
//! code pass through. In a container, a TTY is allocated when stdin is a
//! terminal (or with `-t`), the terminal then in raw mode and its size
//! followed.

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
    /// In a container: allocate a TTY even when stdin is not a terminal
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    tty: bool,
    /// In a container: no TTY even when stdin is a terminal
    #[arg(short = 'T', long)]
    no_tty: bool,
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
/// stdin, stdout, stderr and the exit code pass through; with a TTY the
/// terminal is raw until it ends.
fn in_container(c: &crate::api::ExecContainer, args: &ExecArgs) -> Result<(), Failure> {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let tty = !args.no_tty && (args.tty || terminal);
    // Restored when this returns, however it does.
    let _raw = (tty && terminal).then(RawMode::enter).flatten();
    let code = super::block_on_raw(async {
        let docker = berth_engine::runtime::docker::DockerRuntime::connect(&c.project).await?;
        let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match (terminal, tty) {
            // Typed input goes to the TTY until the command ends.
            (true, true) => Box::new(terminal_input()),
            // Without a TTY a terminal is not read (nothing would end
            // it), as `docker exec` without -i.
            (true, false) => Box::new(tokio::io::empty()),
            (false, _) => Box::new(tokio::io::stdin()),
        };
        let tty = tty.then(|| berth_engine::runtime::docker::Tty {
            term: std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
            size: terminal_size(),
            resized: resizes(),
        });
        docker
            .exec_attached(&args.service, c.replica, args.command.clone(), input, tty)
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

/// (rows, columns) of the terminal on stdin, else on stdout.
fn terminal_size() -> Option<(u16, u16)> {
    let (w, h) = terminal_size::terminal_size_of(std::io::stdin())
        .or_else(|| terminal_size::terminal_size_of(std::io::stdout()))?;
    Some((h.0, w.0))
}

/// The terminal's new size at each SIGWINCH.
fn resizes() -> tokio::sync::mpsc::Receiver<(u16, u16)> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    if let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    {
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                if let Some(size) = terminal_size()
                    && tx.send(size).await.is_err()
                {
                    return;
                }
            }
        });
    }
    rx
}

/// What is typed, read on a thread of its own: a read of a terminal
/// blocks until a key, and must not hold up the end of the run.
fn terminal_input() -> tokio::io::DuplexStream {
    let (theirs, mut ours) = tokio::io::duplex(4096);
    let handle = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        loop {
            let n = match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let sent = handle.block_on(tokio::io::AsyncWriteExt::write_all(&mut ours, &buf[..n]));
            if sent.is_err() {
                return;
            }
        }
    });
    theirs
}

/// The terminal on stdin in raw mode (keys go to the container's TTY as
/// typed, Ctrl-C included); the mode it had is restored on drop.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let saved = tcgetattr(std::io::stdin()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(std::io::stdin(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
    }
}
