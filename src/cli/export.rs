//! `berth export kubernetes`: the project as Kubernetes manifests, one
//! file per object plus a `kustomization.yaml` (`-o DIR`), or one stream
//! on stdout. Warnings (what does not carry over) go to stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use berth_kube::render::{self, Format};
use berth_kube::{KubeVersion, Options};
use clap::{Args, Subcommand, ValueEnum};

use super::{Failure, Global, load, print_stdout};

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum Target {
    /// Kubernetes manifests: Deployments, StatefulSets, Jobs, Services,
    /// ConfigMaps, PersistentVolumeClaims, an Ingress
    Kubernetes(KubeArgs),
}

#[derive(Debug, Args)]
struct KubeArgs {
    /// Write one file per object and a kustomization.yaml into DIR; `-` (the default) writes one stream to stdout
    #[arg(short, long, value_name = "DIR|-")]
    output: Option<PathBuf>,
    /// Namespace of every object (default: the one kubectl uses)
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Kubernetes version to write for (1.33 to 1.37)
    #[arg(long, value_name = "VERSION", default_value = "1.33", value_parser = KubeVersion::parse)]
    kube_version: KubeVersion,
    /// Put before the image of every built service (`build:`), e.g. registry.example.com/team/
    #[arg(long, value_name = "REG/")]
    image_prefix: Option<String>,
    /// ingressClassName of the Ingress (nginx and kong also get their rewrite annotations)
    #[arg(long, value_name = "NAME")]
    ingress_class: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Yaml)]
    format: OutputFormat,
    /// The image of the init containers that wait for a dependency's port
    #[arg(long, value_name = "IMAGE", default_value = berth_kube::DEFAULT_WAIT_IMAGE)]
    wait_image: String,
    /// The image that waits for a Job with kubectl (default: registry.k8s.io/kubectl of --kube-version)
    #[arg(long, value_name = "IMAGE")]
    kubectl_image: Option<String>,
    /// The image of a service, over anything the file says (repeatable)
    #[arg(long = "image", value_name = "SERVICE=IMAGE", value_parser = parse_image)]
    images: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Yaml,
    Json,
}

fn parse_image(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((service, image)) if !service.is_empty() && !image.is_empty() => {
            Ok((service.to_string(), image.to_string()))
        }
        _ => Err(format!("expected SERVICE=IMAGE, got {s:?}")),
    }
}

pub fn run(global: &Global, args: ExportArgs) -> Result<(), Failure> {
    let Target::Kubernetes(args) = args.target;
    let mut load_options = global.load_options(&[])?;
    // A cluster honours what the native runtime cannot: no warning for it.
    load_options.native_checks = false;
    // The process ends right after the export; freeing a large model and
    // thousands of objects would only cost time (as in `berth config`).
    let loaded: &'static berth_compose::Loaded = Box::leak(Box::new(load(&load_options)?));
    let project = &loaded.project;
    let mut files = BTreeMap::new();
    for path in berth_kube::files_to_read(project) {
        let bytes = std::fs::read(&path).map_err(|e| {
            Failure::Usage(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
        files.insert(path, bytes);
    }
    let options = Options {
        namespace: args.namespace,
        kube_version: args.kube_version,
        image_prefix: args.image_prefix,
        ingress_class: args.ingress_class,
        wait_image: args.wait_image,
        kubectl_image: args.kubectl_image,
        images: args.images.into_iter().collect(),
        files,
    };
    let export = berth_kube::export(project, &options)
        .map_err(|e| Failure::Usage(format!("{e}\n{}", e.help())))?;
    let export: &'static berth_kube::Export = Box::leak(Box::new(export));
    {
        use std::io::Write;
        // stderr is unbuffered: one write, not a few per warning.
        let text: String = export
            .warnings
            .iter()
            .map(|w| format!("warning: {w}\n"))
            .collect();
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
    let format = match args.format {
        OutputFormat::Yaml => Format::Yaml,
        OutputFormat::Json => Format::Json,
    };
    let render_failed = |e: render::RenderError| Failure::Runtime(anyhow::anyhow!("{e}"));
    match args.output {
        Some(dir) if dir.as_os_str() != "-" => {
            let files = render::files(&export.objects, format).map_err(render_failed)?;
            write_dir(&dir, &files)?;
            eprintln!(
                "berth: wrote {} objects to {} (apply with: kubectl apply -k {})",
                export.objects.len(),
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        _ => print_stdout(&render::stream(&export.objects, format).map_err(render_failed)?),
    }
}

/// Writes the files whose content differs from what is on disk (an export
/// of an unchanged file writes nothing), on a few threads: a big stack is
/// thousands of files.
fn write_changed(dir: &Path, files: &[(String, String)]) -> Result<(), (PathBuf, std::io::Error)> {
    let write = |part: &[(String, String)]| -> Result<(), (PathBuf, std::io::Error)> {
        for (name, text) in part {
            let path = dir.join(name);
            if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
                continue;
            }
            std::fs::write(&path, text).map_err(|e| (path, e))?;
        }
        Ok(())
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || files.len() < 64 {
        return write(files);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(files.len().div_ceil(threads))
            .map(|part| {
                (
                    part,
                    std::thread::Builder::new().spawn_scoped(scope, move || write(part)),
                )
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|(part, handle)| match handle.map(|h| h.join()) {
                Ok(Ok(result)) => result,
                _ => write(part),
            })
    })
}

/// Writes the files into `dir`, and removes those an earlier export listed
/// in its `kustomization.yaml` that this one does not write (a removed
/// service). Nothing else in the directory is touched.
fn write_dir(dir: &Path, files: &[(String, String)]) -> Result<(), Failure> {
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        Failure::Runtime(anyhow::anyhow!("cannot {what} {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
    let kustomization = dir.join("kustomization.yaml");
    let before = match std::fs::read_to_string(&kustomization) {
        Ok(text) => {
            let listed = render::listed_files(&text);
            if listed.is_empty() && !text.starts_with(render::KUSTOMIZATION_HEADER) {
                return Err(Failure::Usage(format!(
                    "{} was not written by berth; export into another directory, or remove it",
                    kustomization.display()
                )));
            }
            listed
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(fail("read", &kustomization, e)),
    };
    let now: BTreeSet<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    write_changed(dir, files).map_err(|(path, e)| fail("write", &path, e))?;
    for old in before.iter().filter(|f| !now.contains(f.as_str())) {
        let path = dir.join(old);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("remove", &path, e)),
        }
    }
    Ok(())
}
