//! Confinement the native runtime applies to a service's processes:
//! `ulimits`, `security_opt: [no-new-privileges]`, `oom_score_adj`.

use std::time::Duration;

use crate::support::Test;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn limits_no_new_privileges_and_the_oom_score_are_what_the_service_sees() {
    let t = Test::new().compose(
        r#"
services:
  c:
    command: [sh, -c, 'echo "nofile=$$(ulimit -n)/$$(ulimit -Hn)"; grep "Max processes" /proc/self/limits; grep NoNewPrivs /proc/self/status; echo "oom=$$(cat /proc/self/oom_score_adj)"']
    ulimits: {nofile: {soft: 256, hard: 512}, nproc: 300}
    security_opt: ["no-new-privileges:true"]
    oom_score_adj: 500
  plain:
    command: [sh, -c, 'grep NoNewPrivs /proc/self/status; echo "oom=$$(cat /proc/self/oom_score_adj)"']
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("c-1 exited", 10 * SEC);
    up.wait_for("plain-1 exited", 10 * SEC);
    // Each line of a service, its whitespace squeezed.
    let lines = up.drain().to_vec();
    let of = |service: &str| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(service))
            .filter_map(|l| l.split_once('|'))
            .map(|(_, text)| text.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let (c, plain) = (of("c-1 "), of("plain-1 "));
    for want in [
        "nofile=256/512",
        "Max processes 300 300 processes",
        "NoNewPrivs: 1",
        "oom=500",
    ] {
        assert!(c.iter().any(|l| l == want), "{want:?} not in {c:?}");
    }
    // Without the settings: berth's own (no flag, no score).
    for want in ["NoNewPrivs: 0", "oom=0"] {
        assert!(plain.iter().any(|l| l == want), "{want:?} not in {plain:?}");
    }
}

#[test]
fn bad_limits_are_errors_at_their_line_and_other_security_options_a_warning() {
    Test::new()
        .compose(
            "services:\n  c:\n    command: [sleep, '1']\n    ulimits:\n      nofiles: 10\n      nproc: {soft: 20, hard: 10}\n",
        )
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("services.c.ulimits.nofiles: \"nofiles\" is not a resource limit\n --> compose.yaml:5:16")
        .stderr_has("services.c.ulimits.nproc: soft limit 20 is above the hard limit 10\n --> compose.yaml:6:14");
    Test::new()
        .compose(
            "services:\n  c:\n    command: [sleep, '1']\n    security_opt: [no-new-privileges, 'seccomp:unconfined']\n",
        )
        .args(["config", "-q"])
        .run()
        .success()
        .stderr_has("security_opt is not honoured by the native runtime (only no-new-privileges is applied");
}
