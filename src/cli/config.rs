//! `berth config`: validate the project and print its normalized model,
//! like `docker compose config`.

use clap::{Args, ValueEnum};

use super::{Failure, Global, load, print_stdout};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    format: Format,
    /// Print the service names, one per line
    #[arg(long)]
    services: bool,
    /// Print the profile names, one per line
    #[arg(long)]
    profiles: bool,
    /// Print the named volumes, one per line
    #[arg(long)]
    volumes: bool,
    /// Print each service with the runtime that runs it (native or docker)
    #[arg(long)]
    runtimes: bool,
    /// With --runtimes: as `berth up --runtime` would choose
    #[arg(long, value_name = "auto|native|docker", requires = "runtimes")]
    runtime: Option<berth_compose::RuntimeChoice>,
    /// Only validate; print nothing on success
    #[arg(short, long)]
    quiet: bool,
    /// Do not substitute ${VARIABLES}
    #[arg(long)]
    no_interpolate: bool,
    /// Do not make relative paths absolute
    #[arg(long)]
    no_path_resolution: bool,
    /// Write the output to this file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    /// Services to print (default: all)
    #[arg(value_name = "SERVICE")]
    service_names: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

pub fn run(global: &Global, args: ConfigArgs) -> Result<(), Failure> {
    let mut options = global.load_options(&args.service_names)?;
    options.interpolate = !args.no_interpolate;
    options.resolve_paths = !args.no_path_resolution;
    let loaded = load(&options)?;
    // The process ends right after; freeing a large model would only cost time.
    let project = {
        let leaked: &'static berth_compose::Loaded = Box::leak(Box::new(loaded));
        &leaked.project
    };
    super::enforcement(project, args.runtime)?;
    if let Some(tls) = project.settings.proxy.as_ref().and_then(|p| p.tls.as_ref()) {
        berth_proxy::check_certificates(tls).map_err(|e| Failure::Usage(e.to_string()))?;
    }
    if args.quiet {
        return Ok(());
    }
    let text = if args.services {
        lines(project.services.keys())
    } else if args.volumes {
        lines(project.volumes.keys())
    } else if args.runtimes {
        lines(project.services.values().map(|s| {
            format!(
                "{} {}",
                s.name,
                project.runtime_of(s, args.runtime).as_str()
            )
        }))
    } else if args.profiles {
        let mut all: Vec<&String> = project
            .services
            .values()
            .chain(project.disabled_services.values())
            .flat_map(|s| s.profiles.iter())
            .collect();
        all.sort();
        all.dedup();
        lines(all)
    } else {
        let mut json = berth_compose::render::to_json(project);
        if !args.service_names.is_empty()
            && let Some(services) = json.get_mut("services").and_then(|s| s.as_object_mut())
        {
            services.retain(|k, _| args.service_names.contains(k));
        }
        match args.format {
            Format::Json => serde_json::to_string_pretty(&json)
                .map(|s| s + "\n")
                .map_err(|e| Failure::Runtime(e.into()))?,
            Format::Yaml => serde_saphyr::to_string(&json)
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot render YAML: {e}")))?,
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot write {}: {e}", path.display()))),
        None => print_stdout(&text),
    }
}

fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    items.into_iter().fold(String::new(), |mut out, s| {
        out.push_str(s.as_ref());
        out.push('\n');
        out
    })
}
