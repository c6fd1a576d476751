//! The Docker runtime's networks against the real engine: `networks:`
//! from the file (list and map form, aliases, `internal`, `external`),
//! made with `docker compose`'s labels and removed by `down`.

use std::time::Duration;

use crate::docker::{containers, docker, image, project_of};
use crate::support::{Test, http_get, proxy_addr};

const SEC: Duration = Duration::from_secs(1);

/// The project's networks on the engine, by name.
fn networks(project: &str) -> Vec<String> {
    docker(&[
        "network",
        "ls",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Name}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// A container outside the project, its page published by the engine on
/// every host address: reached from a network through the host's
/// forwarding, which an `internal` network has none of. Removed on drop.
struct Outside(String);

impl Outside {
    fn start(name: &str) -> (Outside, u16) {
        docker(&[
            "run",
            "-d",
            "--rm",
            "--name",
            name,
            "--label",
            "io.berth.test=1",
            "-p",
            "0:80",
            image(),
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]);
        let port = docker(&["port", name, "80/tcp"]);
        let port = port
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no published port: {port:?}"));
        (Outside(name.to_string()), port)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}

#[test]
fn containers_on_several_networks_reach_each_other_by_alias_and_only_on_shared_ones() {
    let t = Test::new();
    let (_outside, port) = Outside::start(&format!("{}-outside", project_of(&t)));
    let file = format!(
        r#"
services:
  db:
    image: {image}
    init: true
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    networks:
      back: {{aliases: [database]}}
    ports: ["127.0.0.1::80"]
    healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"], interval: 1s, start_interval: 100ms}}
  api:
    image: {image}
    init: true
    command: ["sh", "-c", "wget -q -O - http://database/ && exec httpd -f -p 80 -h /www"]
    networks:
      front: {{aliases: [api-alias]}}
      back:
    depends_on: {{db: {{condition: service_healthy}}}}
    healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"], interval: 1s, start_interval: 100ms}}
  web:
    image: {image}
    init: true
    command: ["sh", "-c", "wget -q -O - http://api-alias/; nc -w 2 database 80 </dev/null || echo web cannot reach database; timeout 5 wget -q -O - http://host.docker.internal:{port}/ && echo web reached the outside; exec sleep 300"]
    networks: [front]
    depends_on: {{api: {{condition: service_healthy}}}}
  vault:
    image: {image}
    init: true
    command: ["sh", "-c", "timeout 5 wget -q -O - http://host.docker.internal:{port}/ || echo vault cannot reach the outside; exec sleep 300"]
    networks: [back]
networks:
  front: {{}}
  back: {{internal: true}}
x-berth:
  proxy:
    listen: ["127.0.0.1:0"]
    routes:
      - {{path: /, service: db}}
"#,
        image = image()
    );
    let t = t.compose(&file);
    let project = project_of(&t);
    let mut up = t.arg("up").spawn();
    // api reached db by its alias on back (it serves only once it did).
    up.wait_for("api-1 healthy", 60 * SEC);
    // web reached api by its alias on front, not db (only on back).
    up.wait_for_output("web-1", "hello-from-a-container", 30 * SEC);
    up.wait_for_output("web-1", "web cannot reach database", 30 * SEC);
    // back is internal: nothing routed out of it.
    up.wait_for_output("web-1", "web reached the outside", 30 * SEC);
    up.wait_for_output("vault-1", "vault cannot reach the outside", 30 * SEC);
    // The proxy reaches db, which is on the internal network only.
    let (status, body) = http_get(&proxy_addr(&up.test), "/").unwrap();
    assert_eq!((status, body.trim()), (200, "hello-from-a-container"));
    let labels = |name: &str| {
        docker(&[
            "network",
            "inspect",
            "--format",
            "{{.Internal}} {{index .Labels \"com.docker.compose.network\"}}",
            name,
        ])
        .trim()
        .to_string()
    };
    assert_eq!(labels(&format!("{project}_back")), "true back");
    assert_eq!(labels(&format!("{project}_front")), "false front");
    // A network's definition cannot change under its containers: the
    // deploy is refused, naming it, and nothing changes.
    std::fs::write(
        up.test.dir().join("compose.yaml"),
        file.replace("front: {}", "front: {internal: true}"),
    )
    .unwrap();
    up.test
        .run_args(["up", "-d"])
        .code(1)
        .stderr_has("networks.front changed (internal)")
        .stderr_has("berth down");
    assert_eq!(labels(&format!("{project}_front")), "false front");
    up.test.run_args(["down"]).success();
    let _ = up.wait_exit(10 * SEC);
    assert_eq!(containers(&project), Vec::<String>::new());
    assert_eq!(networks(&project), Vec::<String>::new());
}

#[test]
fn an_external_network_must_exist_and_down_leaves_it() {
    let file = |external: &str| {
        format!(
            "services:\n  a:\n    image: {image}\n    init: true\n    command: [\"sh\", \"-c\", \"exec httpd -f -p 80 -h /www\"]\n    networks: [shared, own]\n  b:\n    image: {image}\n    init: true\n    command: [\"sh\", \"-c\", \"until wget -q -O - http://a/; do sleep 0.1; done; exec sleep 300\"]\n    networks: [shared]\nnetworks:\n  own: {{}}\n  shared:\n    external: true\n    name: {external}\n",
            image = image()
        )
    };
    let t = Test::new().compose(&file("berth-test-no-such-network"));
    let project = project_of(&t);
    t.arg("up")
        .run()
        .code(1)
        .stderr_has("external network berth-test-no-such-network does not exist: create it (docker network create berth-test-no-such-network) or drop `external: true` from networks.shared");
    assert_eq!(containers(&project), Vec::<String>::new());
    assert_eq!(networks(&project), Vec::<String>::new());

    let external = format!("berth-test-ext-{project}");
    docker(&["network", "create", &external]);
    let t = Test::new().compose(&file(&external));
    let project = project_of(&t);
    let mut up = t.arg("up").spawn();
    up.wait_for_output("b-1", "hello-from-a-container", 60 * SEC);
    up.test.run_args(["down"]).success();
    let _ = up.wait_exit(10 * SEC);
    assert_eq!(networks(&project), Vec::<String>::new());
    let left = docker(&["network", "ls", "--format", "{{.Name}}"]);
    docker(&["network", "rm", &external]);
    assert!(left.lines().any(|n| n == external), "{left}");
}
