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
fn a_moved_listener_finishes_what_it_carries_and_the_rest_applies_live_but_the_header_limit() {
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
        .stdout_has("proxy: routes swapped in; listening on 0.0.0.0:");
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

    // health_path applies live too; the header size limit at the next start.
    std::fs::write(t.dir().join("compose.yaml"), file("0.0.0.0:0", "/hz")).unwrap();
    t.run_args(["up"])
        .success()
        .stdout_has("proxy: routes swapped in");
    assert_eq!(http_get(&new, "/hz").unwrap().0, 200);
    assert!(http_get(&new, "/health").unwrap().1.starts_with("replica "));
    let bigger = file("0.0.0.0:0", "/hz").replace(
        "    health_path:",
        "    max_header_size: 128k\n    health_path:",
    );
    std::fs::write(t.dir().join("compose.yaml"), bigger).unwrap();
    t.run_args(["up"])
        .success()
        .stdout_has("proxy: max_header_size changed; applied when the stack is started again");
    t.run_args(["diff"])
        .success()
        .stdout_has("proxy: max_header_size changed (applied at the next start");
}
