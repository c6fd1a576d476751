//! The running stack as `backup` and `restore` use it: whether it runs,
//! stopping and starting services, waiting for them to be ready, and
//! running a command in a service the way `berth exec` does.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use berth_compose::Project;

use crate::api::client::{Client, ClientError};
use crate::api::{ExecTarget, Ps, Report, Services};

/// How long `restore` waits for a restarted service before its `restore`
/// command runs.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// A project's stack, when it runs.
#[derive(Debug)]
pub struct Stack {
    client: Client,
}

/// Runs a client future on a small runtime, as an `anyhow` result.
fn block_on<T>(f: impl std::future::Future<Output = Result<T, ClientError>>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    rt.block_on(f).map_err(|e| anyhow::anyhow!("{e}"))
}

impl Stack {
    /// The stack, when one answers on the project's socket.
    ///
    /// # Errors
    /// The socket answers with an error or belongs to someone else.
    pub fn find(project: &Project) -> Result<Option<Stack>> {
        let client = Client::new(&project.settings.state_dir, &project.name);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
        match rt.block_on(client.get::<Ps>("/v1/ps")) {
            Ok(_) => Ok(Some(Stack { client })),
            Err(ClientError::NotRunning { .. }) => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    /// Stops these services (dependents first); their report lines.
    ///
    /// # Errors
    /// The stack refuses.
    pub fn stop(&self, services: &[String]) -> Result<Vec<String>> {
        let body = Services {
            services: services.to_vec(),
        };
        Ok(block_on(self.client.post::<_, Report>("/v1/stop", &body))?.lines)
    }

    /// Starts these services again.
    ///
    /// # Errors
    /// The stack refuses.
    pub fn start(&self, services: &[String]) -> Result<Vec<String>> {
        let body = Services {
            services: services.to_vec(),
        };
        Ok(block_on(self.client.post::<_, Report>("/v1/start", &body))?.lines)
    }

    /// Waits until every replica of `service` is ready.
    ///
    /// # Errors
    /// It is not ready within two minutes.
    pub fn wait_ready(&self, service: &str) -> Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let ps: Ps = block_on(self.client.get("/v1/ps"))?;
            let ready = ps
                .services
                .iter()
                .find(|s| s.name == service)
                .is_some_and(|s| !s.replicas.is_empty() && s.replicas.iter().all(|r| r.ready));
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "services.{service} was not ready within {}s of starting again",
                    READY_WITHIN.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where and with what environment a command runs in `service` (its
    /// first replica's container, when it runs as containers).
    ///
    /// # Errors
    /// The service has no replica running.
    pub fn exec_target(&self, service: &str) -> Result<ExecTarget> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("service", service);
        block_on(self.client.get(&format!("/v1/exec?{}", query.finish())))
    }
}

/// Runs `command` through `sh -c` as `berth exec` would: stdin from
/// `input` (else nothing), stdout to `output` (else berth's stderr, to
/// keep stdout for `--json`), stderr passed through.
///
/// # Errors
/// It cannot start, or exits other than 0.
pub fn run_in(
    target: &ExecTarget,
    service: &str,
    command: &str,
    input: Option<&Path>,
    output: Option<&Path>,
) -> Result<()> {
    if let Some(c) = &target.container {
        return crate::backup::container::exec(
            &c.project, service, c.replica, command, input, output,
        );
    }
    let stdin = match input {
        Some(p) => Stdio::from(
            std::fs::File::open(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?,
        ),
        None => Stdio::null(),
    };
    let stdout = match output {
        Some(p) => Stdio::from(
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.display()))?,
        ),
        None => Stdio::from(std::io::stderr()),
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .envs(&target.env)
        .current_dir(&target.working_dir)
        .stdin(stdin)
        .stdout(stdout)
        .status()
        .map_err(|e| anyhow::anyhow!("services.{service}: cannot run `{command}`: {e}"))?;
    if !status.success() {
        let how = status
            .code()
            .map_or_else(|| "was killed".to_string(), |c| format!("exited with {c}"));
        bail!("services.{service}: `{command}` {how}");
    }
    Ok(())
}
