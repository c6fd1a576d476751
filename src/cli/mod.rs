//! The command line: global options shared by every verb, one file per verb.
//!
//! # Layout
//! - `mod.rs`: [`Cli`], global options, project loading, failures and exit codes.
//! - `config.rs`: `berth config`.
//! - `export.rs`: `berth export kubernetes`.

mod backup;
mod backups;
mod config;
mod dashboard;
mod deploy;
mod detach;
mod down;
mod events;
mod exec;
mod export;
mod lifecycle;
mod lock;
pub mod logs;
mod ps;
mod restore;
mod scheduled;
mod stack;
mod up;
mod volumes;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use berth_compose::{Diagnostics, LoadOptions, Loaded};
use clap::{Args, Parser, Subcommand};

/// Run a Compose stack natively: supervision, health gating, logs and a
/// built-in edge proxy, in one binary.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every verb understands (as `docker compose` spells them).
#[derive(Debug, Args)]
pub struct Global {
    /// Compose file(s) to use, merged in order (default: compose.yaml and friends)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name (default: `name:` in the file, else the directory name)
    #[arg(short = 'p', long = "project-name", global = true, value_name = "NAME")]
    pub project_name: Option<String>,
    /// Project directory (default: the first file's directory)
    #[arg(long, global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Environment file(s) for interpolation (default: .env in the project directory)
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable services of these profiles
    #[arg(
        long = "profile",
        id = "profile",
        global = true,
        value_name = "PROFILE"
    )]
    pub profiles: Vec<String>,
    /// Never use colour in output
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the project and print its normalized model
    Config(config::ConfigArgs),
    /// Show what `berth up` would change in the running stack
    Diff(deploy::DiffArgs),
    /// Start the stack (in the foreground unless -d)
    Up(up::UpArgs),
    /// Stop the running stack in reverse dependency order
    Down(down::DownArgs),
    /// Show services and replicas: state, health, pid, ports, restarts, CPU, memory
    Ps(ps::PsArgs),
    /// Show logs, from the running stack or from the log files
    Logs(logs::LogsArgs),
    /// Restart services replica by replica, without downtime
    Restart(lifecycle::ServicesArgs),
    /// Stop services of the running stack
    Stop(lifecycle::ServicesArgs),
    /// Start stopped services of the running stack
    Start(lifecycle::ServicesArgs),
    /// Change the number of replicas of running services
    Scale(lifecycle::ScaleArgs),
    /// Run a command with a replica's environment and working directory
    Exec(exec::ExecArgs),
    /// Follow state and health changes
    Events(events::EventsArgs),
    /// Print the dashboard's address and a one-time login link
    Dashboard(dashboard::DashboardArgs),
    /// Write the project for another platform: `berth export kubernetes`
    Export(export::ExportArgs),
    /// Archive the services' volumes and dumps, verified and optionally encrypted
    Backup(backup::BackupArgs),
    /// Put an archive back: verify it all, stop the services, restore, start them
    Restore(restore::RestoreArgs),
    /// List the project's archives: time, size and what they hold
    Backups(backups::BackupsArgs),
}

/// `SERVICE=N`.
/// The proxy's listeners as URLs, plain then TLS, as `ps` shows them.
pub fn proxy_urls(plain: &[std::net::SocketAddr], tls: &[std::net::SocketAddr]) -> Vec<String> {
    let plain = plain.iter().map(|a| format!("http://{a}"));
    plain
        .chain(tls.iter().map(|a| format!("https://{a}")))
        .collect()
}

pub fn parse_scale(s: &str) -> Result<(String, u32), String> {
    let (name, n) = s
        .split_once('=')
        .ok_or_else(|| format!("expected SERVICE=N, got {s:?}"))?;
    let n = n
        .parse()
        .map_err(|_| format!("{n:?} is not a replica count"))?;
    Ok((name.to_string(), n))
}

/// What this machine cannot enforce of the services' confinement (cgroup
/// limits, `read_only`): a warning for each, naming the service, the
/// field and why; an error instead with `x-berth.strict: true`.
///
/// # Errors
/// [`Failure::Usage`] under `strict` when anything is not enforced.
pub fn enforcement(
    project: &berth_compose::Project,
    forced: Option<berth_compose::RuntimeChoice>,
) -> Result<(), Failure> {
    let preview = berth_engine::cgroup::Preview::of_this_machine();
    let mut lines = Vec::new();
    for (name, service) in &project.services {
        if project.runtime_of(service, forced) == berth_compose::RuntimeKind::Docker {
            // The engine enforces a container's limits.
            continue;
        }
        let c = &service.confinement;
        for (field, why) in preview.unenforceable(&c.limits) {
            lines.push(format!("services.{name}: {field} is not enforced: {why}"));
        }
        if c.read_only && !berth_engine::confine::read_only_enforced() {
            lines.push(format!(
                "services.{name}: read_only is not enforced: this kernel has no Landlock"
            ));
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    if project.settings.strict {
        return Err(Failure::Usage(format!(
            "{}\nberth: x-berth.strict is true: run where these can be enforced, or remove the limits",
            lines.join("\nberth: ")
        )));
    }
    for line in lines {
        eprintln!("berth: warning: {line}");
    }
    Ok(())
}

/// Runs a parsed command line.
///
/// # Errors
/// A [`Failure`] that says which exit code to use.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Config(args) => config::run(&cli.global, args),
        Command::Diff(args) => deploy::diff(&cli.global, args),
        Command::Up(args) => up::run(&cli.global, args),
        Command::Down(args) => down::run(&cli.global, args),
        Command::Ps(args) => ps::run(&cli.global, args),
        Command::Logs(args) => logs::run(&cli.global, args),
        Command::Restart(args) => lifecycle::restart(&cli.global, args),
        Command::Stop(args) => lifecycle::stop(&cli.global, args),
        Command::Start(args) => lifecycle::start(&cli.global, args),
        Command::Scale(args) => lifecycle::scale(&cli.global, args),
        Command::Exec(args) => exec::run(&cli.global, args),
        Command::Events(args) => events::run(&cli.global, args),
        Command::Dashboard(args) => dashboard::run(&cli.global, args),
        Command::Export(args) => export::run(&cli.global, args),
        Command::Backup(args) => backup::run(&cli.global, args),
        Command::Restore(args) => restore::run(&cli.global, args),
        Command::Backups(args) => backups::run(&cli.global, args),
    }
}

/// Why berth stops with a non-zero exit code.
#[derive(Debug)]
pub enum Failure {
    /// The files are wrong (exit 2); diagnostics already carry everything.
    Config(Box<Diagnostics>),
    /// Bad usage, or a project that cannot run (exit 2).
    Usage(String),
    /// Something failed while running (exit 1).
    Runtime(anyhow::Error),
    /// Ctrl-C (exit 130).
    Interrupted,
    /// Pass an exit code through (exec) without a message.
    Exit(i32),
}

impl Failure {
    /// Prints the failure to stderr and gives the exit code.
    pub fn report(self) -> ExitCode {
        let color = stderr_color();
        let mut err = std::io::stderr().lock();
        match self {
            Failure::Config(d) => {
                let _ = writeln!(err, "{}", d.render(color));
                ExitCode::from(2)
            }
            Failure::Usage(m) => {
                let _ = writeln!(err, "berth: {m}");
                ExitCode::from(2)
            }
            Failure::Runtime(e) => {
                let _ = writeln!(err, "berth: {e:#}");
                ExitCode::from(1)
            }
            Failure::Interrupted => ExitCode::from(130),
            Failure::Exit(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

/// Whether output on stdout gets colour.
pub fn stdout_color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Whether diagnostics on stderr get colour.
pub fn stderr_color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

impl Global {
    /// Load options from the global flags and the process environment.
    pub fn load_options(&self, services: &[String]) -> Result<LoadOptions, Failure> {
        let cwd = std::env::current_dir().map_err(|e| {
            Failure::Runtime(anyhow::anyhow!("cannot read the current directory: {e}"))
        })?;
        let environment = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let mut options = LoadOptions::new(cwd, environment);
        options.files = self.files.clone();
        options.project_name = self.project_name.clone();
        options.project_directory = self.project_directory.clone();
        options.env_files = self.env_files.clone();
        options.profiles = self.profiles.clone();
        options.services = services.to_vec();
        if options.files.iter().any(|f| f.as_os_str() == "-") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
                Failure::Runtime(anyhow::anyhow!("cannot read standard input: {e}"))
            })?;
            options.stdin = Some(text);
        }
        Ok(options)
    }
}

/// Loads the project, printing warnings to stderr.
pub fn load(options: &LoadOptions) -> Result<Loaded, Failure> {
    match berth_compose::load(options) {
        Ok(loaded) => {
            let color = stderr_color();
            let mut err = std::io::stderr().lock();
            for w in &loaded.warnings {
                let _ = write!(err, "{}", w.render(&loaded.sources, color));
            }
            Ok(loaded)
        }
        Err(d) => Err(Failure::Config(Box::new(d))),
    }
}

/// Loads the project without printing warnings (for verbs that only need
/// its name and state directory).
pub fn load_quiet(options: &LoadOptions) -> Result<Loaded, Failure> {
    berth_compose::load(options).map_err(|d| Failure::Config(Box::new(d)))
}

/// The client for the project's running stack.
pub fn connect(
    global: &Global,
) -> Result<(crate::api::client::Client, berth_compose::Project), Failure> {
    let options = global.load_options(&[])?;
    let project = load_quiet(&options)?.project;
    let client = crate::api::client::Client::new(&project.settings.state_dir, &project.name);
    Ok((client, project))
}

/// Runs a client future on a small runtime.
pub fn block_on_raw<T>(f: impl std::future::Future<Output = T>) -> Result<T, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(f))
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot start the async runtime: {e}")))
}

/// Runs a client request; a stack that is not running is exit 1 with its message.
pub fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, crate::api::client::ClientError>>,
) -> Result<T, Failure> {
    block_on_raw(f)?.map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))
}

/// Writes to stdout; a closed pipe (`berth config | head`) is success.
pub fn print_stdout(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Runtime(anyhow::anyhow!(
            "cannot write to standard output: {e}"
        ))),
    }
}
