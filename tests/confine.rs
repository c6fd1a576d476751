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
    up.assert_printed(
        "c-1",
        &[
            "nofile=256/512",
            "Max processes 300 300 processes",
            "NoNewPrivs: 1",
            "oom=500",
        ],
    );
    // Without the settings: berth's own (no flag, no score).
    up.assert_printed("plain-1", &["NoNewPrivs: 0", "oom=0"]);
}

#[test]
fn bad_limits_are_errors_at_their_line_and_other_security_options_a_warning() {
    Test::new()
        .compose(
            "services:\n  c:\n    command: [sleep, '1']\n    ulimits:\n      nofiles: 10\n      nproc: {soft: 20, hard: 10}\n    cap_add: [NET_FLY]\n",
        )
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("services.c.cap_add[0]: \"NET_FLY\" is not a Linux capability\n --> compose.yaml:7:15")
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

#[test]
fn capabilities_are_dropped_and_granted_as_the_file_says() {
    if !nix::unistd::geteuid().is_root() {
        // Without root, processes hold no capability to drop or keep; CI runs as root.
        eprintln!("not root: capabilities cannot be tested here");
        return;
    }
    let t = Test::new().compose(
        r#"
services:
  none:
    command: [sh, -c, 'grep -E "CapEff|CapBnd" /proc/self/status']
    cap_drop: [ALL]
  some:
    command: [sh, -c, 'grep CapBnd /proc/self/status']
    cap_drop: [NET_RAW, cap_mknod]
  bind:
    command: [sh, -c, 'grep -E "CapEff|CapAmb" /proc/self/status']
    user: nobody
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE]
"#,
    );
    let mut up = t.arg("up").spawn();
    for s in ["none-1 exited", "some-1 exited", "bind-1 exited"] {
        up.wait_for(s, 10 * SEC);
    }
    up.assert_printed(
        "none-1",
        &["CapEff: 0000000000000000", "CapBnd: 0000000000000000"],
    );
    // NET_RAW is bit 13, MKNOD bit 27: gone from the bounding set, the rest kept.
    let some = up.output_of("some-1");
    let bnd = some
        .iter()
        .find_map(|l| l.strip_prefix("CapBnd: "))
        .map(|hex| u64::from_str_radix(hex, 16).unwrap())
        .unwrap_or_else(|| panic!("{some:?}"));
    assert_eq!(bnd & (1 << 13 | 1 << 27), 0, "{bnd:x}");
    assert_ne!(bnd & (1 << 0 | 1 << 10), 0, "{bnd:x}");
    // NET_BIND_SERVICE (bit 10) as another user: effective and ambient.
    up.assert_printed(
        "bind-1",
        &["CapEff: 0000000000000400", "CapAmb: 0000000000000400"],
    );
}

#[test]
fn a_read_only_service_writes_its_volume_and_dev_and_nothing_else() {
    let t = Test::new().compose(
        r#"
services:
  c:
    command: [sh, -c, 'touch $$BERTH_VOLUME_DATA/written && echo "volume=ok"; touch ./outside 2>/dev/null || echo "outside=denied"; echo x > /dev/null && echo "dev=ok"; cat compose.yaml > /dev/null && echo "read=ok"']
    read_only: true
    volumes: ["data:/data"]
  free:
    command: [sh, -c, 'touch ./outside-free && echo "outside=ok"']
volumes:
  data: {}
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("c-1 exited", 10 * SEC);
    up.wait_for("free-1 exited", 10 * SEC);
    up.assert_printed("c-1", &["volume=ok", "outside=denied", "dev=ok", "read=ok"]);
    assert!(!up.test.dir().join("outside").exists());
    // The same write from a service that is not read_only.
    assert!(up.output_of("free-1").iter().any(|l| l == "outside=ok"));
}

#[test]
fn tmpfs_is_a_fresh_private_directory_per_run_removed_after_it() {
    let t = Test::new().compose(
        r#"
services:
  c:
    command: [sh, -c, 'ls -A "$$BERTH_VOLUME_RUN" | wc -l; touch "$$BERTH_VOLUME_RUN/pid" && echo "run=$$BERTH_VOLUME_RUN"; touch "$$BERTH_VOLUME_CACHE/x" && echo "cache=ok"; touch ./outside 2>/dev/null || echo "outside=denied"']
    tmpfs: ["/run:size=1m"]
    volumes: [{type: tmpfs, target: /cache}]
    read_only: true
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("c-1 exited", 10 * SEC);
    let c = up.output_of("c-1");
    assert_eq!(c.first().map(String::as_str), Some("0"), "not fresh: {c:?}");
    assert!(c.iter().any(|l| l == "cache=ok"), "{c:?}");
    assert!(c.iter().any(|l| l == "outside=denied"), "{c:?}");
    let dir = c
        .iter()
        .find_map(|l| l.strip_prefix("run="))
        .unwrap_or_else(|| panic!("{c:?}"))
        .to_string();
    assert!(dir.contains("/.berth/tmpfs/"), "{dir}");
    // Removed once the process has ended.
    assert!(
        crate::support::eventually(10 * SEC, || !std::path::Path::new(&dir).exists()),
        "{dir} is still there"
    );
}

#[test]
fn as_root_tmpfs_is_a_real_tmpfs_of_its_size_that_health_checks_see() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: berth cannot mount here; CI runs as root");
        return;
    }
    let t = Test::new().compose(
        r#"
services:
  c:
    command: [sh, -c, 'echo "fs=$$(stat -f -c %T "$$BERTH_VOLUME_RUN")"; echo "blocks=$$(stat -f -c %b "$$BERTH_VOLUME_RUN")"; echo "owner=$$(stat -c %U "$$BERTH_VOLUME_RUN")"; touch "$$BERTH_VOLUME_RUN/ready"; exec sleep 60']
    tmpfs: ["/run:size=1m"]
    user: nobody
    healthcheck:
      test: [CMD-SHELL, 'test -f "$$BERTH_VOLUME_RUN/ready"']
      interval: 1s
      start_interval: 100ms
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for_output("c-1", "owner=nobody", 10 * SEC);
    // 1 MiB in 4 KiB blocks, the service user's.
    up.assert_printed("c-1", &["fs=tmpfs", "blocks=256", "owner=nobody"]);
    // The check runs beside the replica, in its mount namespace: it sees
    // the file; berth's own view of the directory is empty.
    up.wait_for("c-1 healthy", 10 * SEC);
    let dirs: Vec<_> = walk(&up.test.dir().join(".berth/tmpfs"));
    assert!(
        dirs.iter().all(|d| !d.join("ready").exists()),
        "the tmpfs leaks into berth's view: {dirs:?}"
    );
}

/// Every directory below `root`.
fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        i += 1;
    }
    out
}
