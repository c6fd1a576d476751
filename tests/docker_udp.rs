//! `/udp` ports of container services against the real engine: berth
//! listens on the published port and relays datagrams to the ready
//! replicas, a session per client. The image's UDP server is a static
//! echo program compiled here with `rustc` (Debian's busybox has no UDP
//! server nor `nc -u`), on top of the busybox test image.

use std::net::UdpSocket;
use std::time::Duration;

use crate::docker::{docker, image};
use crate::support::{Test, eventually};

const SEC: Duration = Duration::from_secs(1);

/// Answers each datagram with the container's host name and the datagram;
/// `/tmp/bound` says it listens (its health check).
const ECHO: &str = r#"
fn main() {
    let s = std::net::UdpSocket::bind("0.0.0.0:9000").unwrap();
    std::fs::write("/tmp/bound", "").unwrap();
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let mut buf = [0u8; 1500];
    loop {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let answer = format!("{} {}", host.trim(), String::from_utf8_lossy(&buf[..n]));
            let _ = s.send_to(answer.as_bytes(), from);
        }
    }
}
"#;

/// The busybox image with `/bin/udp-echo`; removed when the guard goes.
struct EchoImage(String);

impl EchoImage {
    fn build() -> EchoImage {
        let base = image();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("echo.rs"), ECHO).unwrap();
        let rustc = std::process::Command::new("rustc")
            .args([
                "-O",
                "-C",
                "target-feature=+crt-static",
                "echo.rs",
                "-o",
                "udp-echo",
            ])
            .current_dir(dir.path())
            .output()
            .expect("rustc compiles the UDP echo server");
        assert!(
            rustc.status.success(),
            "{}",
            String::from_utf8_lossy(&rustc.stderr)
        );
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM {base}\nLABEL io.berth.test=1\nCOPY udp-echo /bin/udp-echo\n"),
        )
        .unwrap();
        let name = format!("berth-test-udp-echo:{}", std::process::id());
        let out = std::process::Command::new("docker")
            .args(["build", "-q", "-t", &name])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        EchoImage(name)
    }
}

impl Drop for EchoImage {
    fn drop(&mut self) {
        docker(&["image", "rm", "-f", &self.0]);
    }
}

/// Sends `text` from `client` until an answer comes (a datagram can be
/// lost while a replica starts), for at most `within`.
fn ask(client: &UdpSocket, text: &str, within: Duration) -> Option<String> {
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let deadline = std::time::Instant::now() + within;
    let mut buf = [0u8; 1500];
    while std::time::Instant::now() < deadline {
        let _ = client.send(text.as_bytes());
        if let Ok(n) = client.recv(&mut buf) {
            return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    None
}

#[test]
fn a_udp_port_reaches_the_replicas_and_follows_a_rolling_restart() {
    let echo = EchoImage::build();
    let t = Test::new().compose(&format!(
        "services:\n  echo:\n    image: {}\n    command: [\"udp-echo\"]\n    init: true\n    ports: [\"127.0.0.1::9000/udp\"]\n    deploy: {{replicas: 2}}\n    stop_grace_period: 1s\n    healthcheck: {{test: [\"CMD\", \"test\", \"-f\", \"/tmp/bound\"], interval: 1s, start_interval: 100ms}}\n",
        echo.0
    ));
    let mut up = t.arg("up").spawn();
    let line = up.wait_for("port 9000/udp listening on ", 60 * SEC);
    let addr = line.rsplit(' ').next().unwrap().trim().to_string();
    up.wait_for("stack is up", 60 * SEC);
    // `ps` says where it listens, in the table and in JSON.
    let ps = up
        .test
        .run_args(["ps", "--format", "json"])
        .success()
        .json();
    assert_eq!(ps["services"][0]["listening_udp"]["9000"], addr.as_str());
    up.test
        .run_args(["ps"])
        .success()
        .stdout_has(&format!("udp: {addr} -> echo 9000/udp"));
    // A session per client: two clients, the two replicas.
    let clients: Vec<UdpSocket> = (0..2)
        .map(|_| {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.connect(&addr).unwrap();
            c
        })
        .collect();
    let mut hosts = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let answer = ask(c, &format!("ping{i}"), 20 * SEC).expect("an answer through berth");
        let (host, echoed) = answer.split_once(' ').unwrap();
        assert_eq!(echoed, format!("ping{i}"));
        hosts.push(host.to_string());
    }
    assert_ne!(hosts[0], hosts[1], "both clients went to the same replica");
    // After a rolling restart the same client is answered by a new replica.
    up.test.run_args(["restart", "echo"]).success();
    assert!(
        eventually(20 * SEC, || {
            ask(&clients[0], "again", SEC)
                .is_some_and(|a| a.ends_with(" again") && !hosts.iter().any(|h| a.starts_with(h)))
        }),
        "no answer from a new replica after the restart"
    );
    up.test.run_args(["down"]).success();
    let _ = up.wait_exit(10 * SEC);
    drop(echo);
}
