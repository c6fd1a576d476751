//! `user` and `group_add` natively: the service's processes run as that
//! user (as root only: switching users takes it), its new named volumes are
//! that user's, and an unknown user stops `up` before anything starts.

use std::time::Duration;

use crate::support::Test;

const SEC: Duration = Duration::from_secs(1);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn a_service_runs_as_its_user_and_writes_its_volume() {
    if !is_root() {
        // Switching users takes root; CI runs as root.
        eprintln!("not root: switching users cannot be tested here");
        return;
    }
    let t = Test::new().compose(
        r#"
services:
  c:
    command: [sh, -c, 'echo "who=$$(id -u):$$(id -g) groups=$$(id -G) user=$$USER"; touch $$BERTH_VOLUME_DATA/written && echo "volume=ok"; touch /etc/berth-identity-test 2>/dev/null || echo "outside=denied"; grep CapEff /proc/self/status']
    user: nobody
    group_add: ["100"]
    volumes: ["data:/data"]
volumes:
  data: {}
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("c-1 exited", 10 * SEC);
    up.assert_printed(
        "c-1",
        &[
            "who=65534:65534 groups=65534 100 user=nobody",
            "volume=ok",
            "outside=denied",
            "CapEff: 0000000000000000",
        ],
    );
    let volume = up.test.dir().join(".berth/volumes");
    let owner = std::fs::read_dir(&volume)
        .unwrap()
        .map(|e| std::os::unix::fs::MetadataExt::uid(&e.unwrap().metadata().unwrap()))
        .collect::<Vec<_>>();
    assert_eq!(owner, [65534]);
}

#[test]
fn an_unknown_user_or_group_stops_up_naming_the_service() {
    Test::new()
        .compose("services:\n  c:\n    command: [sleep, '1']\n    user: no-such-user-here\n  d:\n    command: [sleep, '1']\n    group_add: [no-such-group-here]\n")
        .arg("up")
        .run()
        .code(2)
        .stderr_has("service c: user \"no-such-user-here\" does not exist on this machine")
        .stderr_has("service d: group \"no-such-group-here\" does not exist on this machine");
}
