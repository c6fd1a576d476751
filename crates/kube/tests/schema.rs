//! Strict schema validation of real exports: the demo stack, every stack in
//! `shared/stacks` (with each of its override files), every file in
//! `shared/conformance/awesome-compose` and every golden file, exported for
//! Kubernetes 1.33 and 1.37 and checked by `kubernetes-validate --strict`
//! (the official OpenAPI schemas, unknown fields rejected), one invocation
//! per version over all of them. A missing `kubernetes-validate` fails the
//! test: `pip install kubernetes-validate` (`.ci/run` does).
//!
//! Native services need an image for the cluster; the test gives each one
//! `registry.example.com/<project>/<service>:1.0`, as `--image
//! SERVICE=IMAGE` does on the command line.
//!
//! The same run checks that a YAML 1.1 reader (PyYAML, which
//! kubernetes-validate uses; kubectl's reader is YAML 1.1 too) reads every
//! stream as exactly the JSON rendering of the same objects: no `yes`, `on`,
//! `0755` or `1:30` that changes type on the way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_compose::LoadOptions;
use berth_kube::render::{Format, stream};
use berth_kube::{KubeVersion, Options};

/// `shared/` beside the repository.
fn shared_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_SHARED_DIR") {
        return PathBuf::from(d);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    for c in [beside, PathBuf::from("/work/shared")] {
        if c.is_dir() {
            return c.canonicalize().unwrap_or(c);
        }
    }
    panic!("shared/ not found beside the repository; set BERTH_SHARED_DIR")
}

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A project to export: a label, its directory and files.
struct Case {
    label: String,
    dir: PathBuf,
    files: Vec<PathBuf>,
}

fn sorted(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn cases() -> Vec<Case> {
    let repo = repo_dir();
    let reference = repo.join("examples/reference");
    let mut out = vec![
        Case {
            label: "demo".into(),
            dir: repo.clone(),
            files: vec![repo.join("compose.yaml")],
        },
        Case {
            label: "reference".into(),
            files: vec![reference.join("compose.yaml")],
            dir: reference,
        },
    ];
    let shared = shared_dir();
    for dir in sorted(&shared.join("stacks"))
        .into_iter()
        .filter(|d| d.is_dir())
    {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let base = dir.join("compose.yaml");
        out.push(Case {
            label: format!("stack-{name}"),
            dir: dir.clone(),
            files: vec![base.clone()],
        });
        for file in sorted(&dir) {
            let f = file.file_name().unwrap().to_string_lossy().into_owned();
            if f.starts_with("compose.") && f.ends_with(".yaml") && f != "compose.yaml" {
                out.push(Case {
                    label: format!("stack-{name}-{}", f.trim_end_matches(".yaml")),
                    dir: dir.clone(),
                    files: vec![base.clone(), file.clone()],
                });
            }
        }
    }
    let awesome = shared.join("conformance/awesome-compose");
    for file in sorted(&awesome)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        out.push(Case {
            label: format!("awesome-{name}"),
            dir: awesome.clone(),
            files: vec![file],
        });
    }
    out
}

/// Exports a case for a version: the YAML stream, its JSON rendering, and
/// the number of objects.
fn export(case: &Case, version: KubeVersion) -> (String, String, usize) {
    let mut load = LoadOptions::new(&case.dir, Default::default());
    load.files = case.files.clone();
    load.native_checks = false;
    let loaded = berth_compose::load(&load)
        .unwrap_or_else(|d| panic!("{}:\n{}", case.label, d.render(false)));
    let project = &loaded.project;
    let mut options = Options {
        kube_version: version,
        ..Options::default()
    };
    for s in project.services.values() {
        if s.image.is_none() && !s.other.contains_key("build") {
            options.images.insert(
                s.name.clone(),
                format!("registry.example.com/{}/{}:1.0", project.name, s.name),
            );
        }
    }
    for path in berth_kube::files_to_read(project) {
        options
            .files
            .insert(path.clone(), std::fs::read(&path).unwrap());
    }
    let export =
        berth_kube::export(project, &options).unwrap_or_else(|e| panic!("{}: {e}", case.label));
    assert!(
        !export.objects.is_empty(),
        "{}: nothing exported",
        case.label
    );
    (
        stream(&export.objects, Format::Yaml).unwrap(),
        stream(&export.objects, Format::Json).unwrap(),
        export.objects.len(),
    )
}

fn kubernetes_validate() -> String {
    let program =
        std::env::var("KUBERNETES_VALIDATE").unwrap_or_else(|_| "kubernetes-validate".into());
    match Command::new(&program).arg("--version").output() {
        Ok(o) if o.status.success() => program,
        _ => panic!(
            "{program} is not installed: the schema test needs it (pip install kubernetes-validate; .ci/run installs it)"
        ),
    }
}

/// Runs kubernetes-validate over every file for one version; fails unless
/// every object passed (a kind without a schema is only a WARN there, so
/// the passes are counted).
fn validate(program: &str, version: &str, files: &[PathBuf], objects: usize) {
    let output = Command::new(program)
        .args(["--strict", "--kubernetes-version", version])
        .args(files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let problems: Vec<&str> = text.lines().filter(|l| !l.starts_with("INFO ")).collect();
    let passed = text
        .lines()
        .filter(|l| l.starts_with("INFO ") && l.contains(" passed "))
        .count();
    assert!(
        output.status.success() && problems.is_empty() && passed == objects,
        "kubernetes-validate {version}: {passed} of {objects} objects passed, exit {:?}\n{}\n{}",
        output.status.code(),
        problems.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    println!(
        "kubernetes-validate --strict {version}: {passed} objects in {} files passed",
        files.len()
    );
}

/// Every YAML stream reads, in a YAML 1.1 reader, as its JSON twin.
fn yaml_means_json(pairs: &[(PathBuf, PathBuf)]) {
    let script = r#"
import json, sys, yaml
bad = []
for y, j in zip(sys.argv[1::2], sys.argv[2::2]):
    docs = [d for d in yaml.safe_load_all(open(y)) if d is not None]
    if docs != json.load(open(j))["items"]:
        bad.append(y)
print("\n".join(bad))
sys.exit(1 if bad else 0)
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]);
    for (y, j) in pairs {
        cmd.arg(y).arg(j);
    }
    let output = cmd.output().expect("python3");
    assert!(
        output.status.success(),
        "PyYAML reads these streams differently from their JSON:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_export_passes_strict_schema_validation_for_1_33_and_1_37() {
    let program = kubernetes_validate();
    let cases = cases();
    assert!(cases.len() >= 30, "only {} projects found", cases.len());
    let work = tempfile::tempdir().unwrap();
    let golden = sorted(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases"));
    let golden: Vec<PathBuf> = golden
        .into_iter()
        .map(|d| d.join("expected.yaml"))
        .filter(|f| f.is_file())
        .collect();
    let golden_objects: usize = golden
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| *l == "---")
                .count()
        })
        .sum();
    for version in ["1.33.0", "1.37.0"] {
        let dir = work.path().join(version);
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = golden.clone();
        let mut pairs = Vec::new();
        let mut objects = golden_objects;
        for case in &cases {
            let (yaml, json, n) = export(case, KubeVersion::parse(version).unwrap());
            let y = dir.join(format!("{}.yaml", case.label));
            let j = dir.join(format!("{}.json", case.label));
            std::fs::write(&y, yaml).unwrap();
            std::fs::write(&j, json).unwrap();
            files.push(y.clone());
            pairs.push((y, j));
            objects += n;
        }
        validate(&program, version, &files, objects);
        if version == "1.33.0" {
            yaml_means_json(&pairs);
        }
    }
}
