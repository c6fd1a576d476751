//! `berth up` on a running project whose edge proxy settings changed:
//! listeners move live, connections under way through the old one finish.

use std::time::Duration;

use crate::support::{REPLICA_SERVER, Test, eventually, http_get, http_get_within};

const SEC: Duration = Duration::from_secs(1);

fn file(listen: &str, health: &str) -> String {
    format!(
        r#"
x-berth:
  proxy:
    listen: ["{listen}"]
    health_path: {health}
    routes:
      - {{path: /, service: web}}
services:
  web:
    command: [python3, server.py]
    ports: ["127.0.0.1::80"]
    deploy: {{replicas: 2}}
    x-berth:
      ready: {{http: /}}
"#
    )
}

fn proxy_addrs(t: &Test) -> Vec<String> {
    let ps = t.run_args(["ps", "--format", "json"]).json();
    ps["proxy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .trim_start_matches("http://")
                .to_string()
        })
        .collect()
}

#[test]
fn a_moved_listener_finishes_what_it_carries_and_every_proxy_setting_applies_live() {
    let t = Test::new()
        .file("server.py", REPLICA_SERVER)
        .compose(&file("127.0.0.1:0", "/health"));
    t.run_args(["up", "-d", "--wait"]).success();
    let _down = crate::support::Detached { test: &t };
    let old = proxy_addrs(&t).remove(0);
    assert!(eventually(10 * SEC, || http_get(&old, "/").is_ok_and(|r| r.0 == 200)));

    // A request in flight through the old listener: every replica hangs.
    for r in ["1", "2"] {
        std::fs::write(t.dir().join(format!("hang.{r}")), "").unwrap();
    }
    let in_flight = {
        let old = old.clone();
        std::thread::spawn(move || http_get_within(&old, "/", 30 * SEC))
    };
    assert!(eventually(10 * SEC, || {
        ["1", "2"]
            .iter()
            .any(|r| t.dir().join(format!("stuck.{r}")).exists())
    }));

    // Another listener (port 0 again: a new one), health_path unchanged.
    std::fs::write(t.dir().join("compose.yaml"), file("127.0.0.1:0", "/health")).unwrap();
    t.run_args(["up"]).success().stdout_has("nothing to do");
    std::fs::write(t.dir().join("compose.yaml"), file("0.0.0.0:0", "/health")).unwrap();
    t.run_args(["up", "--dry-run"])
        .success()
        .stdout_has("proxy: listen changed (applied live)");
    t.run_args(["up"])
        .success()
        .stdout_has("proxy: routes swapped in; listening on http://0.0.0.0:");
    let new = proxy_addrs(&t).remove(0).replace("0.0.0.0", "127.0.0.1");
    assert_ne!(new, old);
    assert!(
        http_get(&old, "/").is_err(),
        "the old listener still accepts"
    );
    for r in ["1", "2"] {
        std::fs::remove_file(t.dir().join(format!("hang.{r}"))).unwrap();
    }
    let answered = in_flight.join().unwrap().unwrap();
    assert_eq!(answered.0, 200, "{answered:?}");
    assert!(http_get(&new, "/").unwrap().1.starts_with("replica "));

    // health_path applies live too, and so does the header size limit.
    std::fs::write(t.dir().join("compose.yaml"), file("0.0.0.0:0", "/hz")).unwrap();
    t.run_args(["up"])
        .success()
        .stdout_has("proxy: routes swapped in");
    assert_eq!(http_get(&new, "/hz").unwrap().0, 200);
    assert!(http_get(&new, "/health").unwrap().1.starts_with("replica "));
    let long_header = |len: usize| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&new).unwrap();
        // Two headers: the replica (Python) refuses a single line over 64k.
        let pad = "x".repeat(len / 2);
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {pad}\r\nX-Pad-2: {pad}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.split_whitespace().nth(1).unwrap_or("").to_string()
    };
    assert_eq!(long_header(80_000), "431", "over the 64k default");
    let bigger = file("0.0.0.0:0", "/hz").replace(
        "    health_path:",
        "    max_header_size: 128k\n    health_path:",
    );
    std::fs::write(t.dir().join("compose.yaml"), bigger).unwrap();
    t.run_args(["up", "--dry-run"])
        .success()
        .stdout_has("proxy: max_header_size changed (applied live)");
    t.run_args(["up"])
        .success()
        .stdout_has("proxy: routes swapped in");
    assert_eq!(long_header(80_000), "200");
    t.run_args(["diff"]).success().stdout_has("nothing to do");
}

#[test]
fn every_deploy_is_an_event() {
    let t = Test::new()
        .file("server.py", REPLICA_SERVER)
        .compose(&file("127.0.0.1:0", "/health"));
    t.run_args(["up", "-d", "--wait"]).success();
    let _down = crate::support::Detached { test: &t };
    let mut events = t.command();
    events
        .args(["events"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut events = events.spawn().unwrap();
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Deploys until one arrives: the stream only carries what happens after
    // it subscribed, and nothing says when it has.
    let deadline = std::time::Instant::now() + 30 * SEC;
    let mut n = 0;
    let line = loop {
        n += 1;
        let health = format!("/health{n}");
        std::fs::write(t.dir().join("compose.yaml"), file("127.0.0.1:0", &health)).unwrap();
        t.run_args(["up"]).success();
        if let Ok(line) = rx.recv_timeout(SEC) {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "no deploy event");
    };
    assert!(
        line.contains("berth: deploy done: web: keep; proxy: health_path changed (applied live)"),
        "{line}"
    );
    let _ = events.kill();
    let _ = events.wait();
}
