//! Golden files: one small Compose file per mapping rule under
//! `tests/cases/<rule>/compose.yaml`, with what the export must be:
//! `expected.yaml` (the stream `berth export kubernetes` prints) and
//! `warnings.txt` (one per line), or `error.txt` when it must fail.
//! An optional `args` file holds command-line options, whitespace
//! separated (`--namespace prod --image api=reg/api:1`), and `env NAME=VALUE`
//! for the environment the file is interpolated with (empty otherwise).
//!
//! `BLESS=1 cargo nextest run -p berth-kube --test golden` rewrites the
//! expected files from the current output; review them by hand, they are
//! the specification.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_compose::LoadOptions;
use berth_kube::render::{Format, stream};
use berth_kube::{KubeVersion, Options};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

/// What a case's `args` file says.
fn parse_args(dir: &Path) -> (Options, LoadOptions) {
    let text = std::fs::read_to_string(dir.join("args")).unwrap_or_default();
    let mut options = Options::default();
    let mut env = indexmap::IndexMap::new();
    let mut profiles = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(flag) = words.next() {
        let mut value = || {
            words
                .next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
                .to_string()
        };
        match flag {
            "--namespace" => options.namespace = Some(value()),
            "--kube-version" => options.kube_version = KubeVersion::parse(&value()).unwrap(),
            "--image-prefix" => options.image_prefix = Some(value()),
            "--ingress-class" => options.ingress_class = Some(value()),
            "--wait-image" => options.wait_image = value(),
            "--kubectl-image" => options.kubectl_image = Some(value()),
            "--image" => {
                let v = value();
                let (s, i) = v.split_once('=').unwrap();
                options.images.insert(s.into(), i.into());
            }
            "--profile" => profiles.push(value()),
            "env" => {
                let v = value();
                let (k, val) = v.split_once('=').unwrap();
                env.insert(k.to_string(), val.to_string());
            }
            other => panic!("{}: unknown option {other}", dir.display()),
        }
    }
    let mut load = LoadOptions::new(dir, env);
    load.files = vec![dir.join("compose.yaml")];
    load.profiles = profiles;
    load.native_checks = false;
    (options, load)
}

/// The case's output: (expected.yaml, warnings.txt) or error.txt.
fn run(dir: &Path) -> Result<(String, String), String> {
    let (mut options, load) = parse_args(dir);
    let loaded = berth_compose::load(&load)
        .unwrap_or_else(|d| panic!("{}:\n{}", dir.display(), d.render(false)));
    let mut files = BTreeMap::new();
    for path in berth_kube::files_to_read(&loaded.project) {
        files.insert(path.clone(), std::fs::read(&path).unwrap());
    }
    options.files = files;
    match berth_kube::export(&loaded.project, &options) {
        Ok(export) => {
            let yaml = stream(&export.objects, Format::Yaml).unwrap();
            let warnings: String = export.warnings.iter().map(|w| format!("{w}\n")).collect();
            let again = berth_kube::export(&loaded.project, &options).unwrap();
            assert_eq!(
                stream(&again.objects, Format::Yaml).unwrap(),
                yaml,
                "{}: two exports differ",
                dir.display()
            );
            Ok((yaml, warnings))
        }
        Err(e) => Err(format!("{e}\n{}\n", e.help())),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The first line where two texts differ, for the failure message.
fn first_difference(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let at = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    format!(
        "line {}:\n  expected: {:?}\n  actual:   {:?}",
        at + 1,
        e.get(at).copied().unwrap_or("<end>"),
        a.get(at).copied().unwrap_or("<end>")
    )
}

fn write_or_remove(path: &Path, text: &str) {
    if text.is_empty() {
        let _ = std::fs::remove_file(path);
    } else {
        std::fs::write(path, text).unwrap();
    }
}

#[test]
fn every_mapping_rule_matches_its_golden_files() {
    let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("compose.yaml").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 20, "only {} cases found", dirs.len());
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (yaml, warnings, error) = match run(dir) {
            Ok((y, w)) => (y, w, String::new()),
            Err(e) => (String::new(), String::new(), e),
        };
        let expected = [
            ("expected.yaml", yaml),
            ("warnings.txt", warnings),
            ("error.txt", error),
        ];
        for (file, actual) in expected {
            let path = dir.join(file);
            if bless {
                write_or_remove(&path, &actual);
            } else if read(&path) != actual {
                failures.push(format!(
                    "{name}/{file}: {}",
                    first_difference(&read(&path), &actual)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden files differ (BLESS=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
