//! Deploys to a running stack of containers against the real engine: an
//! image whose content changed under the same tag is a change.

use std::time::Duration;

use crate::docker::{containers, docker, image, project_of};
use crate::support::{Load, Test, eventually, http_get, proxy_addr};

const SEC: Duration = Duration::from_secs(1);

/// The ID of the image `name` names now.
fn image_id(name: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[test]
fn a_rebuilt_image_under_the_same_tag_replaces_the_service_replica_by_replica() {
    let base = image();
    let t = Test::new()
        .file(
            "app/Dockerfile",
            &format!("FROM {base}\nLABEL io.berth.test=1\nCOPY index.html /www/index.html\n"),
        )
        .file("app/index.html", "v1\n")
        .compose(
            r#"
services:
  web:
    build: ./app
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    init: true
    ports: ["127.0.0.1::80"]
    deploy: {replicas: 2}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      start_interval: 100ms
    stop_grace_period: 2s
x-berth:
  proxy:
    listen: ["127.0.0.1:0"]
    routes:
      - {path: /, service: web}
"#,
        );
    let project = project_of(&t);
    let tag = format!("{project}-web");
    let mut ids = Vec::new();
    let stack = t.up_detached();
    ids.push(image_id(&tag));
    let addr = proxy_addr(&t);
    assert_eq!(http_get(&addr, "/").unwrap().1.trim(), "v1");
    t.run_args(["up", "--dry-run"])
        .success()
        .stdout_is("nothing to do: the running stack matches the file\n");

    // Built outside berth: the file is the same, the image is not.
    std::fs::write(t.dir().join("app/index.html"), "v2\n").unwrap();
    let built = docker(&[
        "build",
        "-q",
        "-t",
        &tag,
        &t.dir().join("app").to_string_lossy(),
    ]);
    assert!(built.starts_with("sha256:"), "{built}");
    ids.push(image_id(&tag));
    t.run_args(["up", "--dry-run"])
        .success()
        .stdout_is("web: replace (image ID changed)\n");
    let load = Load::start(&addr, 4);
    t.run_args(["up", "--no-build"])
        .success()
        .stdout_has("web-1: replaced without downtime")
        .stdout_has("web-2: replaced without downtime");
    load.finish_without_failures(20);
    for _ in 0..4 {
        assert_eq!(http_get(&addr, "/").unwrap().1.trim(), "v2");
    }

    // `up` builds the image again (the default, as --build): changed, replaced.
    std::fs::write(t.dir().join("app/index.html"), "v3\n").unwrap();
    t.run_args(["up"])
        .success()
        .stdout_has("web-1: replaced without downtime");
    ids.push(image_id(&tag));
    for _ in 0..4 {
        assert_eq!(http_get(&addr, "/").unwrap().1.trim(), "v3");
    }
    // Built again unchanged: the same image, nothing to do.
    t.run_args(["up"])
        .success()
        .stdout_is("nothing to do: the running stack matches the file\n");
    drop(stack);
    assert!(
        eventually(10 * SEC, || containers(&project).is_empty()),
        "{:?}",
        containers(&project)
    );
    for id in &ids {
        docker(&["image", "rm", "-f", id]);
    }
}

#[test]
fn a_container_reaches_a_native_service_at_its_new_port_after_a_deploy() {
    let file = |port: u16| {
        format!(
            r#"
services:
  api:
    command: ["python3", "server.py"]
    ports: ["127.0.0.1::{port}"]
    x-berth: {{ready: {{tcp: true}}}}
  client:
    image: {image}
    command: ["sh", "-c", "while true; do wget -q -O - http://host.docker.internal:18782/ && echo; sleep 0.1; done"]
    init: true
    stop_grace_period: 1s
"#,
            image = image()
        )
    };
    let t = Test::new()
        .file("server.py", crate::support::REPLICA_SERVER)
        .compose(&file(18781));
    let mut up = t.arg("up").spawn();
    up.wait_for("stack is up", 60 * SEC);
    assert_eq!(up.count("client-1  | replica 1 pid "), 0);
    std::fs::write(up.test.dir().join("compose.yaml"), file(18782)).unwrap();
    up.test
        .run_args(["up"])
        .success()
        .stdout_has("api-1: replaced without downtime");
    // The gateway's forwarder moved to the new port with the others.
    up.wait_for("client-1  | replica 1 pid ", 30 * SEC);
}
