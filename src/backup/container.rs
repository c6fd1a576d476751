//! Backups of services that run as containers: their `dump`, `restore` and
//! hook commands run in the replica's container through the engine (as
//! `docker exec`, in the container's environment), their output and input
//! streamed from and to berth's files.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::ListContainersOptions;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// Runs `command` through `sh -c` in the running container of `service`'s
/// replica `replica` of `project`: stdin from `input` (else nothing),
/// stdout to `output` (else berth's stderr), stderr to berth's stderr.
///
/// # Errors
/// No engine, no running container, or the command exits other than 0.
pub fn exec(
    project: &str,
    service: &str,
    replica: u32,
    command: &str,
    input: Option<&Path>,
    output: Option<&Path>,
) -> Result<()> {
    let code = runtime()?.block_on(exec_async(
        project, service, replica, command, input, output,
    ))?;
    if code != 0 {
        bail!("services.{service}: `{command}` exited with {code} (in its container)");
    }
    Ok(())
}

async fn running(docker: &Docker, project: &str, service: &str, replica: u32) -> Result<String> {
    let filters = HashMap::from([
        (
            "label".to_string(),
            vec![
                format!("com.docker.compose.project={project}"),
                format!("com.docker.compose.service={service}"),
                format!("com.docker.compose.container-number={replica}"),
            ],
        ),
        ("status".to_string(), vec!["running".to_string()]),
    ]);
    docker
        .list_containers(Some(ListContainersOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .context("the Docker Engine did not list the containers")?
        .into_iter()
        .find_map(|c| c.id)
        .with_context(|| format!("services.{service}: replica {replica} has no running container"))
}

async fn exec_async(
    project: &str,
    service: &str,
    replica: u32,
    command: &str,
    input: Option<&Path>,
    output: Option<&Path>,
) -> Result<i64> {
    let docker = engine()?;
    let container = running(&docker, project, service, replica).await?;
    let created = docker
        .create_exec(
            &container,
            CreateExecOptions {
                cmd: Some(vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    command.to_string(),
                ]),
                attach_stdin: Some(input.is_some()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("services.{service}: the engine cannot run `{command}`"))?;
    let StartExecResults::Attached {
        output: stream,
        input: mut stdin,
    } = docker
        .start_exec(&created.id, None)
        .await
        .with_context(|| format!("services.{service}: the engine cannot run `{command}`"))?
    else {
        bail!("services.{service}: the engine did not attach to `{command}`");
    };
    let feed = match input {
        Some(p) => {
            let mut file = tokio::fs::File::open(p)
                .await
                .with_context(|| format!("cannot read {}", p.display()))?;
            Some(tokio::spawn(async move {
                let copied = tokio::io::copy(&mut file, &mut stdin).await;
                let _ = stdin.shutdown().await;
                copied
            }))
        }
        None => {
            let _ = stdin.shutdown().await;
            None
        }
    };
    drain(stream, output, service, command).await?;
    if let Some(feed) = feed {
        feed.await
            .context("feeding the command failed")?
            .context("cannot feed the command its input")?;
    }
    let inspected = docker
        .inspect_exec(&created.id)
        .await
        .context("the engine did not say how the command ended")?;
    Ok(inspected.exit_code.unwrap_or(-1))
}

/// Writes what the command prints: stdout to `output` (else berth's
/// stderr), stderr to berth's stderr.
async fn drain(
    mut stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    output: Option<&Path>,
    service: &str,
    command: &str,
) -> Result<()> {
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match output {
        Some(p) => Box::new(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(tokio::io::stderr()),
    };
    let mut err = tokio::io::stderr();
    while let Some(chunk) = stream.next().await {
        match chunk
            .with_context(|| format!("services.{service}: `{command}`'s output broke off"))?
        {
            LogOutput::StdOut { message } | LogOutput::Console { message } => out
                .write_all(&message)
                .await
                .context("cannot write the command's output")?,
            LogOutput::StdErr { message } => {
                let _ = err.write_all(&message).await;
            }
            LogOutput::StdIn { .. } => {}
        }
    }
    out.flush()
        .await
        .context("cannot write the command's output")?;
    Ok(())
}

/// Where a named volume of the engine is mounted in the short-lived
/// containers that copy it (created, never started).
const MOUNT: &str = "/berth-volume";

/// A container of `image` mounting `volume` at [`MOUNT`], never started:
/// the engine's archive API reads and writes through it.
async fn carrier(docker: &Docker, volume: &str, image: &str, read_only: bool) -> Result<String> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    let mode = if read_only { ":ro" } else { "" };
    let created = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(image.to_string()),
                // Never run: an image without a command needs one to be created.
                cmd: Some(vec!["/berth-never-started".to_string()]),
                labels: Some(HashMap::from([(
                    "io.berth.backup".to_string(),
                    "1".to_string(),
                )])),
                host_config: Some(HostConfig {
                    binds: Some(vec![format!("{volume}:{MOUNT}{mode}")]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .with_context(|| {
            format!("the engine cannot mount the volume {volume} in a container of {image}")
        })?;
    Ok(created.id)
}

async fn remove(docker: &Docker, id: &str) {
    let _ = docker
        .remove_container(
            id,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
}

fn engine() -> Result<Docker> {
    Docker::connect_with_defaults().context("cannot reach the Docker Engine")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Copies the engine's volume `volume` into the empty directory `dest`
/// (owners, modes and times kept), through a container of `image`.
///
/// # Errors
/// No engine, no such volume or image, or `dest` cannot be written.
pub fn export_volume(volume: &str, image: &str, dest: &Path) -> Result<()> {
    runtime()?.block_on(async {
        let docker = engine()?;
        docker
            .inspect_volume(volume)
            .await
            .with_context(|| format!("the engine has no volume {volume}"))?;
        let id = carrier(&docker, volume, image, true).await?;
        let copied = download(&docker, &id, volume, dest).await;
        remove(&docker, &id).await;
        copied
    })
}

async fn download(docker: &Docker, id: &str, volume: &str, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let spool = dest.with_extension("tar");
    let mut file = tokio::fs::File::create(&spool)
        .await
        .with_context(|| format!("cannot create {}", spool.display()))?;
    let mut stream = docker.download_from_container(
        id,
        Some(bollard::query_parameters::DownloadFromContainerOptions {
            path: format!("{MOUNT}/."),
        }),
    );
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("copying the volume {volume} out broke off"))?;
        file.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", spool.display()))?;
    }
    file.flush().await?;
    drop(file);
    let dest = dest.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut archive = tar::Archive::new(std::fs::File::open(&spool)?);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        let unpacked = archive
            .unpack(&dest)
            .with_context(|| format!("cannot unpack the volume into {}", dest.display()));
        let _ = std::fs::remove_file(&spool);
        unpacked
    })
    .await
    .context("unpacking the volume failed")?
}

/// Replaces the engine's volume `volume` (a project's, labelled as `docker
/// compose` labels them: `project`, `key`) with the content of `src`,
/// through a container of `image`. The services mounting it must be
/// stopped (their containers gone).
///
/// # Errors
/// No engine, the volume is still in use, or the copy fails.
pub fn import_volume(
    project: &str,
    key: &str,
    volume: &str,
    image: &str,
    src: &Path,
) -> Result<()> {
    runtime()?.block_on(async {
        let docker = engine()?;
        if docker.inspect_volume(volume).await.is_ok() {
            docker
                .remove_volume(
                    volume,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
                .with_context(|| {
                    format!("the volume {volume} cannot be replaced (a container still uses it?)")
                })?;
        }
        let labels = HashMap::from([
            (
                "com.docker.compose.project".to_string(),
                project.to_string(),
            ),
            ("com.docker.compose.volume".to_string(), key.to_string()),
        ]);
        docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(volume.to_string()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .with_context(|| format!("the engine cannot create the volume {volume}"))?;
        let id = carrier(&docker, volume, image, false).await?;
        let copied = upload(&docker, &id, volume, src).await;
        remove(&docker, &id).await;
        copied
    })
}

async fn upload(docker: &Docker, id: &str, volume: &str, src: &Path) -> Result<()> {
    let spool = src.with_extension("tar");
    let (from, to) = (src.to_path_buf(), spool.clone());
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut builder = tar::Builder::new(std::fs::File::create(&to)?);
        builder.follow_symlinks(false);
        builder
            .append_dir_all(".", &from)
            .with_context(|| format!("cannot read {}", from.display()))?;
        builder.into_inner()?.sync_all()?;
        Ok(())
    })
    .await
    .context("packing the volume failed")??;
    let file = tokio::fs::File::open(&spool)
        .await
        .with_context(|| format!("cannot read {}", spool.display()))?;
    // A read error ends the body with it: the engine refuses the archive.
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
    let result = docker
        .upload_to_container(
            id,
            Some(bollard::query_parameters::UploadToContainerOptions {
                path: MOUNT.to_string(),
                ..Default::default()
            }),
            body,
        )
        .await
        .with_context(|| format!("copying into the volume {volume} failed"));
    let _ = std::fs::remove_file(&spool);
    result
}
