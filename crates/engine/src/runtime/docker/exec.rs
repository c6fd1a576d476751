//! `berth exec` in a replica's container, as `docker exec` through the
//! engine's API: stdin, stdout, stderr and the exit code pass through;
//! with a TTY the engine allocates one (its output is one stream, as a
//! terminal's) and follows the size of the caller's terminal.

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::ResizeExecOptions;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::DockerRuntime;

/// The terminal of an `exec` with a TTY.
#[derive(Debug)]
pub struct Tty {
    /// `TERM` in the container.
    pub term: String,
    /// (rows, columns) now, when known.
    pub size: Option<(u16, u16)>,
    /// Its later sizes (the caller's terminal was resized).
    pub resized: mpsc::Receiver<(u16, u16)>,
}

impl DockerRuntime {
    /// `berth exec` into the running container of replica `number` of
    /// `service`: `argv` with its stdin from `input` (until its end), its
    /// output written to this process's stdout and stderr; its exit code.
    /// With `tty`, in a terminal the engine allocates.
    ///
    /// # Errors
    /// No such running container, or what the engine said.
    pub async fn exec_attached(
        &self,
        service: &str,
        number: u32,
        argv: Vec<String>,
        mut input: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        tty: Option<Tty>,
    ) -> Result<i64, String> {
        let container = self.running(service, number).await?;
        let created = self
            .docker
            .create_exec(
                &container,
                CreateExecOptions {
                    cmd: Some(argv),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty.is_some()),
                    env: tty.as_ref().map(|t| vec![format!("TERM={}", t.term)]),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let StartExecResults::Attached {
            mut output,
            input: mut stdin,
        } = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Err("the engine did not attach".into());
        };
        let with_tty = tty.is_some();
        let resizing = tty.map(|t| self.follow_size(&created.id, t));
        let feed = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut input, &mut stdin).await;
            if with_tty {
                // The engine ends a TTY session whose input is closed,
                // output still under way: the end of the input is what a
                // terminal sends for it instead, Ctrl-D.
                let _ = stdin.write_all(b"\x04").await;
                let _ = stdin.flush().await;
                std::future::pending::<()>().await;
            }
            let _ = stdin.shutdown().await;
        });
        let mut out = tokio::io::stdout();
        let mut err = tokio::io::stderr();
        while let Some(Ok(chunk)) = output.next().await {
            let _ = match chunk {
                LogOutput::StdErr { message } => err.write_all(&message).await,
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    let written = out.write_all(&message).await;
                    // A terminal shows what comes as it comes.
                    let _ = out.flush().await;
                    written
                }
                LogOutput::StdIn { .. } => Ok(()),
            };
        }
        let _ = out.flush().await;
        let _ = err.flush().await;
        feed.abort();
        if let Some(task) = resizing {
            task.abort();
        }
        self.exit_code(&created.id).await
    }

    /// The exit code of an exec whose output ended: the engine may take a
    /// moment to record it.
    async fn exit_code(&self, exec: &str) -> Result<i64, String> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let inspected = self
                .docker
                .inspect_exec(exec)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(code) = inspected
                .exit_code
                .filter(|_| inspected.running != Some(true))
            {
                return Ok(code);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(inspected.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Sizes the exec's terminal as the caller's, now and at each resize.
    fn follow_size(&self, exec: &str, mut tty: Tty) -> tokio::task::JoinHandle<()> {
        let docker = self.docker.clone();
        let exec = exec.to_string();
        tokio::spawn(async move {
            let mut next = tty.size;
            loop {
                if let Some((rows, columns)) = next {
                    let _ = docker
                        .resize_exec(
                            &exec,
                            ResizeExecOptions {
                                h: i32::from(rows),
                                w: i32::from(columns),
                            },
                        )
                        .await;
                }
                match tty.resized.recv().await {
                    Some(size) => next = Some(size),
                    None => return,
                }
            }
        })
    }
}
