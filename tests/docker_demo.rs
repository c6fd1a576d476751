//! The repository's demo stack run as containers (`berth up --runtime
//! docker`) from a statically linked demo-api image built here, offline:
//! `cargo build` with `+crt-static` for this machine's target, then
//! `examples/demo-api/Dockerfile` (FROM scratch) around the binary.

use std::path::PathBuf;
use std::time::Duration;

use crate::docker::{containers, docker, project_of};
use crate::support::{Test, eventually, http_get, proxy_addr};

const SEC: Duration = Duration::from_secs(1);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The triple rustc builds for on this machine.
fn host_target() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names its host")
        .to_string()
}

/// demo-api linked statically (debug, without debug info), in a target
/// directory of its own beside the berth under test; with its PostgreSQL
/// and Redis backends, for the reference stack's image too (one build).
pub fn static_demo_api() -> PathBuf {
    let berth = crate::support::berth_bin();
    let target_dir = berth
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("static");
    let target = host_target();
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "demo-api",
            "--target",
            &target,
            "--target-dir",
        ])
        .arg(&target_dir)
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C strip=debuginfo",
        )
        .current_dir(repo())
        .status()
        .unwrap();
    assert!(status.success(), "building a static demo-api failed");
    target_dir.join(target).join("debug").join("demo-api")
}

/// The image `tag`, built from the repository's Dockerfile; removed when
/// dropped.
struct DemoImage(String);

impl DemoImage {
    fn build(tag: &str) -> DemoImage {
        let context = tempfile::tempdir().unwrap();
        std::fs::copy(static_demo_api(), context.path().join("demo-api")).unwrap();
        let dockerfile = repo().join("examples/demo-api/Dockerfile");
        let out = std::process::Command::new("docker")
            .args(["build", "-q", "--label", "io.berth.test=1", "-t", tag, "-f"])
            .arg(&dockerfile)
            .arg(context.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        DemoImage(tag.to_string())
    }
}

impl Drop for DemoImage {
    fn drop(&mut self) {
        docker(&["image", "rm", "-f", &self.0]);
    }
}

#[test]
fn the_demo_stack_runs_as_containers_from_a_static_demo_api_image() {
    let t = Test::new();
    let project = project_of(&t);
    let image = DemoImage::build(&format!("berth-test-demo-api:{project}"));
    let state = t.dir().join("state");
    // A project, image, state directory and proxy port of its own; api's
    // 8000 published on a port berth picks rather than exposed (an exposed
    // port binds 127.0.0.1:8000, which stacks side by side would share).
    let t = t.file(
        "override.yaml",
        &format!(
            r#"
name: {project}
services:
  migrate:
    image: {image}
  api:
    image: {image}
    expose: !reset []
    ports: ["127.0.0.1::8000"]
x-berth:
  state_dir: {state}
  proxy:
    listen: !override ["127.0.0.1:0"]
"#,
            image = image.0,
            state = state.display()
        ),
    );
    let files = format!("{}:override.yaml", repo().join("compose.yaml").display());
    let t = t.env("COMPOSE_FILE", &files);
    let mut up = t.args(["up", "--runtime", "docker"]).spawn();
    up.wait_for("stack is up", 120 * SEC);
    // Containers, not processes: docker sees three api replicas.
    let names = containers(&project);
    for n in 1..=3 {
        assert!(names.contains(&format!("{project}-api-{n}")), "{names:?}");
    }
    // Through the proxy to a replica, which reads the items the migration
    // container wrote into the shared volume.
    let proxy = proxy_addr(&up.test);
    let (status, body) = http_get(&proxy, "/api/items").unwrap();
    assert_eq!(status, 200, "{body}");
    let items: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        items.as_array().is_some_and(|i| i.len() >= 3),
        "not the seeded items: {body}"
    );
    let (status, page) = http_get(&proxy, "/").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");
    up.test.run_args(["down", "-v"]).success();
    let _ = up.wait_exit(20 * SEC);
    assert!(
        eventually(10 * SEC, || containers(&project).is_empty()),
        "{:?}",
        containers(&project)
    );
    let volumes = docker(&["volume", "ls", "-q"]);
    assert!(
        !volumes.lines().any(|v| v.starts_with(&project)),
        "{volumes}"
    );
    drop(image);
}
