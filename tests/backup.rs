//! `berth backup`, `restore` and `backups` on a stopped stack: volumes
//! round-trip byte for byte with their modes, times and symlinks; a
//! damaged, truncated or foreign archive changes nothing; a full disk
//! leaves no archive; `keep` prunes.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::support::{Test, postgres_bin};

const COMPOSE: &str = r#"
name: bk
services:
  app:
    command: [sleep, "60"]
    volumes: ["data:/data"]
    x-berth:
      backup:
        exclude: ["*.tmp", "cache/**"]
volumes:
  data: {}
"#;

/// Bytes that do not compress: xorshift from a seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn volume(t: &Test) -> PathBuf {
    t.dir().join(".berth/volumes/bk_data")
}

/// A volume with nested directories, modes, an old mtime, a symlink, and
/// files the `exclude` globs leave out.
fn fill(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    std::fs::write(dir.join("a.txt"), "hello\n").unwrap();
    std::fs::write(dir.join("sub/big.bin"), noise(1 << 20, 7)).unwrap();
    std::fs::write(dir.join("sub/deeper/empty"), "").unwrap();
    std::fs::write(dir.join("sub/scratch.tmp"), "left out").unwrap();
    std::fs::write(dir.join("cache/c.bin"), "left out").unwrap();
    std::fs::set_permissions(dir.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(
        dir.join("sub/deeper"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::os::unix::fs::symlink("../a.txt", dir.join("sub/link")).unwrap();
    let old = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_mtime(dir.join("sub/big.bin"), old).unwrap();
}

/// Every path under `dir` with its kind, mode, mtime (files and links) and
/// content hash or link target.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(dir).unwrap().display().to_string();
        let what = if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            format!("dir {:o}", m.mode() & 0o7777)
        } else if m.file_type().is_symlink() {
            format!("link -> {}", std::fs::read_link(&p).unwrap().display())
        } else {
            use sha2::Digest;
            let hash = sha2::Sha256::digest(std::fs::read(&p).unwrap());
            format!("file {:o} {} {:x}", m.mode() & 0o7777, m.mtime(), hash)
        };
        out.insert(rel, what);
    }
    out
}

fn archive_of(run: &crate::support::Run) -> PathBuf {
    PathBuf::from(run.json()["archive"].as_str().unwrap())
}

#[test]
fn a_volume_round_trips_byte_for_byte_without_what_exclude_leaves_out() {
    let t = Test::new().compose(COMPOSE);
    fill(&volume(&t));
    let made = t.run_args(["backup", "--json"]).success();
    let archive = archive_of(&made);
    assert!(
        archive.starts_with(t.dir().join(".berth/backups")),
        "{archive:?}"
    );
    assert_eq!(made.json()["volumes"][0]["files"], 3, "{}", made.stdout());
    let mut before = snapshot(&volume(&t));
    before.remove("sub/scratch.tmp");
    before.remove("cache/c.bin");
    // The data goes: files deleted, one changed, the directory gone.
    std::fs::write(volume(&t).join("a.txt"), "changed").unwrap();
    std::fs::remove_dir_all(volume(&t)).unwrap();
    t.run_args(["restore", archive.to_str().unwrap()])
        .success()
        .stdout_has("volume bk_data: 3 files");
    assert_eq!(snapshot(&volume(&t)), before);
}

#[test]
fn a_damaged_archive_is_refused_naming_the_member_and_changes_nothing() {
    let t = Test::new().compose(COMPOSE);
    fill(&volume(&t));
    let archive = archive_of(&t.run_args(["backup", "--json"]).success());
    std::fs::write(volume(&t).join("a.txt"), "after the backup").unwrap();
    let after = snapshot(&volume(&t));
    let bytes = std::fs::read(&archive).unwrap();
    // One byte flipped in the middle: inside the 1 MiB of noise.
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    std::fs::write(&archive, &flipped).unwrap();
    t.run_args(["restore", archive.to_str().unwrap()])
        .code(1)
        .stderr_has("member volumes/bk_data/sub/big.bin")
        .stderr_has("nothing was changed");
    assert_eq!(snapshot(&volume(&t)), after);
    // Cut short: at half, and just before the manifest's end.
    for len in [bytes.len() / 2, bytes.len() - 8] {
        std::fs::write(&archive, &bytes[..len]).unwrap();
        let run = t.run_args(["restore", archive.to_str().unwrap()]).code(1);
        let err = run.stderr();
        assert!(
            err.contains("member ") && err.contains("nothing was changed"),
            "cut at {len}: {err}"
        );
        assert_eq!(snapshot(&volume(&t)), after);
    }
    // Not an archive at all.
    std::fs::write(&archive, "hello").unwrap();
    t.run_args(["restore", archive.to_str().unwrap()])
        .code(1)
        .stderr_has("nothing was changed");
    assert_eq!(snapshot(&volume(&t)), after);
}

#[test]
fn another_projects_archive_is_refused_without_force() {
    let t = Test::new().compose(COMPOSE);
    fill(&volume(&t));
    let archive = archive_of(&t.run_args(["backup", "--json"]).success());
    let mut before = snapshot(&volume(&t));
    before.remove("sub/scratch.tmp");
    before.remove("cache/c.bin");
    let other = t.dir().join(".berth/volumes/other_data");
    t.run_args(["-p", "other", "restore", archive.to_str().unwrap()])
        .code(2)
        .stderr_has("is a backup of project bk, not of other: pass --force");
    assert!(!other.exists());
    t.run_args([
        "-p",
        "other",
        "restore",
        "--force",
        archive.to_str().unwrap(),
    ])
    .success();
    assert_eq!(snapshot(&other), before);
}

#[test]
fn dry_run_verifies_and_changes_nothing() {
    let t = Test::new().compose(COMPOSE);
    fill(&volume(&t));
    let archive = archive_of(&t.run_args(["backup", "--json"]).success());
    std::fs::write(volume(&t).join("a.txt"), "after").unwrap();
    let after = snapshot(&volume(&t));
    t.run_args(["restore", "--dry-run", archive.to_str().unwrap()])
        .success()
        .stdout_has("would restore");
    assert_eq!(snapshot(&volume(&t)), after);
}

#[test]
fn a_full_disk_leaves_no_archive_under_its_name() {
    let t = Test::new().compose(COMPOSE);
    fill(&volume(&t));
    // A file size limit stands in for a full disk: writes past 256 KiB fail.
    let berth = crate::support::berth_bin();
    let run = std::process::Command::new("sh")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 256; exec \"$0\" backup -o out/archive.tar.zst",
        ])
        .arg(&berth)
        .current_dir(t.dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write the archive"), "{err}");
    let left: Vec<_> = std::fs::read_dir(t.dir().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn backups_lists_archives_and_keep_prunes_the_oldest() {
    let t = Test::new().compose(&COMPOSE.replace(
        "volumes:\n  data: {}",
        "volumes:\n  data: {}\nx-berth:\n  backup:\n    dir: ./archives\n    keep: {last: 2}",
    ));
    fill(&volume(&t));
    let first = archive_of(&t.run_args(["backup", "--json"]).success());
    let second = archive_of(&t.run_args(["backup", "--json"]).success());
    let third = t.run_args(["backup", "--json"]).success();
    assert_eq!(third.json()["pruned"], serde_json::json!([first]));
    assert!(!first.exists() && second.exists());
    let listed = t.run_args(["backups", "--json"]).success().json();
    let paths: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            second.to_str().unwrap(),
            archive_of(&third).to_str().unwrap()
        ]
    );
    assert_eq!(
        listed[0]["summary"]["volumes"],
        serde_json::json!(["bk_data"])
    );
    t.run_args(["backups"])
        .success()
        .stdout_has("volumes bk_data");
}

/// Debian's PostgreSQL run natively, as in `postgres.rs`, with a dump.
fn postgres_stack(bin: &Path) -> Test {
    let bin = bin.display();
    Test::new().compose(&format!(
        r#"
name: pgbk
services:
  init:
    user: postgres
    volumes: ["pgdata:/var/lib/postgresql/data"]
    command: [sh, -c, 'test -s "$$BERTH_VOLUME_VAR_LIB_POSTGRESQL_DATA/PG_VERSION" || {bin}/initdb -D "$$BERTH_VOLUME_VAR_LIB_POSTGRESQL_DATA" -U app --auth=trust >/dev/null']
  db:
    user: postgres
    volumes: ["pgdata:/var/lib/postgresql/data"]
    command: [sh, -c, 'exec {bin}/postgres -D "$$BERTH_VOLUME_VAR_LIB_POSTGRESQL_DATA" -c listen_addresses=127.0.0.1 -c port=$$PORT -c unix_socket_directories=']
    depends_on: {{init: {{condition: service_completed_successfully}}}}
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -q -h 127.0.0.1 -p $$PORT -U app"]
      interval: 1s
      start_interval: 100ms
      retries: 30
    x-berth:
      backup:
        dump:
          command: pg_dump -Fc -h 127.0.0.1 -p "$$PORT" -U app postgres
          restore: pg_restore -c --if-exists -h 127.0.0.1 -p "$$PORT" -U app -d postgres
        hooks: {{pre: psql -q -h 127.0.0.1 -p "$$PORT" -U app -c CHECKPOINT postgres}}
"#
    ))
}

/// A query's output through `berth exec db` (psql as `app`).
pub fn psql(t: &Test, sql: &str) -> String {
    let script = format!("psql -h 127.0.0.1 -p \"$PORT\" -U app -tAc \"{sql}\" postgres");
    t.run_args(["exec", "db", "--", "sh", "-c", &script])
        .success()
        .stdout()
        .trim()
        .to_string()
}

/// A member of an archive, read with GNU tar and zstd.
fn member(archive: &Path, name: &str) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .args(["--zstd", "-xOf"])
        .arg(archive)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn postgres_round_trips_through_its_volume_and_its_dump() {
    if !nix::unistd::geteuid().is_root() {
        // Running as `postgres` takes root; CI runs as root.
        eprintln!("not root: cannot switch to user postgres here");
        return;
    }
    let bin = postgres_bin();
    let t = postgres_stack(&bin);
    let up = t.up_detached();
    psql(
        &t,
        "create table t(n int); insert into t select generate_series(1, 100)",
    );
    let made = t.run_args(["backup", "--json"]).success();
    let archive = archive_of(&made);
    assert_eq!(
        made.json()["dumps"][0]["service"],
        "db",
        "{}",
        made.stdout()
    );
    assert!(
        member(&archive, "dumps/db").starts_with(b"PGDMP"),
        "not a pg_dump archive"
    );
    psql(&t, "delete from t");
    assert_eq!(psql(&t, "select count(*) from t"), "0");

    // Stopped: the volume comes back byte for byte, and the rows with it.
    drop(up);
    let volume = t.dir().join(".berth/volumes/pgbk_pgdata");
    std::fs::remove_dir_all(&volume).unwrap();
    t.run_args(["restore", archive.to_str().unwrap()])
        .success()
        .stderr_has("services.db: its dump was not restored: the stack is not running");
    let manifest: serde_json::Value =
        serde_json::from_slice(&member(&archive, "manifest.json")).unwrap();
    let mut files = 0;
    for (name, m) in manifest["members"].as_object().unwrap() {
        let Some(rel) = name.strip_prefix("volumes/pgbk_pgdata/") else {
            continue;
        };
        if m["kind"] != "file" {
            continue;
        }
        use sha2::Digest;
        let hash = sha2::Sha256::digest(std::fs::read(volume.join(rel)).unwrap());
        assert_eq!(format!("{hash:x}"), m["sha256"].as_str().unwrap(), "{rel}");
        files += 1;
    }
    assert!(files > 100, "only {files} files in the volume");
    let up = t.up_detached();
    assert_eq!(psql(&t, "select count(*), sum(n) from t"), "100|5050");

    // Running: db is stopped, its volume restored, started, and its dump restored.
    psql(&t, "delete from t; create table later(x int)");
    t.run_args(["restore", archive.to_str().unwrap()])
        .success()
        .stdout_has("db: dump restored");
    assert_eq!(psql(&t, "select count(*), sum(n) from t"), "100|5050");
    assert_eq!(
        psql(
            &t,
            "select count(*) from pg_tables where tablename = 'later'"
        ),
        "0"
    );
    drop(up);
}

fn pid_of(t: &Test, service: &str) -> Option<u64> {
    let ps = t.run_args(["ps", "--format", "json"]).success().json();
    ps["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == service)?["replicas"][0]["pid"]
        .as_u64()
}

#[test]
fn stop_true_stops_the_service_while_its_volume_is_archived_then_starts_it() {
    let t =
        Test::new().compose(&COMPOSE.replace("exclude: [\"*.tmp\", \"cache/**\"]", "stop: true"));
    fill(&volume(&t));
    let _up = t.up_detached();
    let before = pid_of(&t, "app").expect("app runs");
    let made = t.run_args(["backup", "--json"]).success();
    let downtime = made.json()["downtime_seconds"].as_f64();
    assert!(downtime.is_some_and(|d| d > 0.0), "{}", made.stdout());
    let ps = crate::support::ps_until(&t, "app running again", |ps| {
        ps["services"][0]["replicas"][0]["state"] == "running"
    });
    let after = ps["services"][0]["replicas"][0]["pid"].as_u64();
    assert!(after.is_some() && after != Some(before), "{ps}");
    assert_eq!(made.json()["volumes"][0]["files"], 5);
}

/// `age-keygen` into `dir/name`; the identity file and its recipient.
fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let out = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age is not installed (apt-get install age; .ci/run does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("age-keygen")
        .arg("-y")
        .arg(&key)
        .output()
        .unwrap();
    (
        key,
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
    )
}

#[test]
fn encrypted_archives_open_with_the_age_cli_and_with_berth_only_with_the_key() {
    let scratch = tempfile::tempdir().unwrap();
    let (key, recipient) = age_key(scratch.path(), "key.txt");
    let (other_key, _) = age_key(scratch.path(), "other.txt");
    let t = Test::new().compose(&format!(
        "{COMPOSE}x-berth:\n  backup:\n    encrypt_to: [{recipient}]\n"
    ));
    fill(&volume(&t));
    std::fs::write(volume(&t).join("secret.txt"), "the plain text of a secret").unwrap();
    let made = t.run_args(["backup", "--json"]).success();
    let archive = archive_of(&made);
    assert!(
        archive.to_str().unwrap().ends_with(".tar.zst.age"),
        "{archive:?}"
    );
    assert_eq!(made.json()["encrypted"], true);
    // Debian's age CLI reads it: a tar.zst with the manifest last.
    let listing = std::process::Command::new("sh")
        .args(["-c", "age -d -i \"$1\" \"$2\" | zstd -dc | tar -t", "sh"])
        .arg(&key)
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let names = String::from_utf8(listing.stdout).unwrap();
    assert!(
        names.contains("volumes/bk_data/secret.txt") && names.ends_with("manifest.json\n"),
        "{names}"
    );
    let mut before = snapshot(&volume(&t));
    before.remove("sub/scratch.tmp");
    before.remove("cache/c.bin");
    std::fs::remove_dir_all(volume(&t)).unwrap();
    let path = archive.to_str().unwrap();
    t.run_args(["restore", path])
        .code(1)
        .stderr_has("is encrypted (age): pass --identity KEYFILE");
    t.run_args(["restore", "--identity", other_key.to_str().unwrap(), path])
        .code(1)
        .stderr_has("can decrypt");
    assert!(!volume(&t).exists(), "a failed restore wrote the volume");
    t.run_args(["restore", "--identity", key.to_str().unwrap(), path])
        .success();
    assert_eq!(snapshot(&volume(&t)), before);
    t.run_args(["backups"]).success().stdout_has("encrypted");
}

#[test]
fn a_schedule_makes_backups_while_up_runs_and_keep_prunes_them() {
    // Every second (a sixth field, first, is seconds): real time, but short.
    let t = Test::new().compose(&format!(
        "{COMPOSE}x-berth:\n  backup:\n    schedule: \"* * * * * *\"\n    keep: {{last: 2}}\n"
    ));
    fill(&volume(&t));
    let mut up = t.arg("up").spawn();
    up.wait_for("scheduled: * * * * * *", std::time::Duration::from_secs(30));
    let three = crate::support::eventually(std::time::Duration::from_secs(30), || {
        up.count(".tar.zst (") >= 3
    });
    assert!(three, "fewer than 3 scheduled backups: {:?}", up.drain());
    up.wait_for("pruned ", std::time::Duration::from_secs(30));
    let listed = up.test.run_args(["backups", "--json"]).success().json();
    let n = listed.as_array().unwrap().len();
    assert!((1..=3).contains(&n), "keep: {{last: 2}} left {n}: {listed}");
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn binds_round_trip_with_their_files_but_not_the_project_directory() {
    let t = Test::new()
        .compose(
            r#"
name: bk
services:
  web:
    command: [sleep, "60"]
    volumes: ["./site:/srv", "./nginx.conf:/etc/nginx.conf:ro", ".:/app"]
"#,
        )
        .file("site/index.html", "<h1>hi</h1>")
        .file("site/img/logo.svg", "<svg/>")
        .file("nginx.conf", "events {}");
    let plain = t.run_args(["backup", "--json"]).success();
    assert_eq!(
        plain.json()["volumes"],
        serde_json::json!([]),
        "binds need --binds"
    );
    let made = t.run_args(["backup", "--binds", "--json"]).success();
    assert_eq!(
        made.json()["volumes"].as_array().unwrap().len(),
        2,
        "{}",
        made.stdout()
    );
    let warned = made.json()["warnings"].to_string();
    assert!(
        warned.contains("bind mount . holds berth's state directory"),
        "{warned}"
    );
    let archive = archive_of(&made);
    let site = snapshot(&t.dir().join("site"));
    std::fs::remove_dir_all(t.dir().join("site")).unwrap();
    std::fs::write(t.dir().join("nginx.conf"), "changed").unwrap();
    t.run_args(["restore", archive.to_str().unwrap()]).success();
    assert_eq!(snapshot(&t.dir().join("site")), site);
    assert_eq!(
        std::fs::read_to_string(t.dir().join("nginx.conf")).unwrap(),
        "events {}"
    );
    assert!(t.dir().join("compose.yaml").exists());
}

#[test]
fn a_failing_dump_fails_the_backup_and_leaves_no_archive() {
    let t = Test::new().compose(&COMPOSE.replace(
        "exclude: [\"*.tmp\", \"cache/**\"]",
        "dump: {command: \"echo partial; echo broken >&2; exit 3\", restore: \"cat\"}\n        hooks: {pre: \"echo $$BERTH_SERVICE > $$BERTH_VOLUME_DATA/pre-hook-ran\"}",
    ));
    fill(&volume(&t));
    // Stopped: volumes only, and a warning for the dump and the hook.
    t.run_args(["backup"])
        .success()
        .stderr_has("services.app: the stack is not running, so its dump was not made")
        .stderr_has("services.app: the stack is not running, so its pre hook did not run");
    let _up = t.up_detached();
    t.run_args(["backup", "--json"])
        .code(1)
        .stderr_has("broken")
        .stderr_has("services.app: the dump failed: services.app: `echo partial; echo broken >&2; exit 3` exited with 3");
    let left: Vec<String> = std::fs::read_dir(t.dir().join(".berth/backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left.len(),
        2,
        "only the first backup and its summary: {left:?}"
    );
    assert!(
        !volume(&t).join("pre-hook-ran").exists(),
        "the hook ran after a failed dump"
    );
}

/// A service that runs as a container: its named volume lives in the
/// Docker Engine and its dump runs in its container.
#[test]
fn a_containers_volume_and_dump_round_trip_through_the_engine() {
    let image = crate::docker::image();
    let mut up = Test::new()
        .compose(&format!(
            r#"
services:
  store:
    image: {image}
    command: ["sh", "-c", "echo store ready; exec sleep 3600"]
    volumes: ["data:/data"]
    stop_grace_period: 1s
    x-berth:
      ready: {{log: "store ready"}}
      backup:
        dump: {{command: "cat /data/notes.txt", restore: "cat > /data/from-the-dump.txt"}}
volumes:
  data: {{}}
"#
        ))
        .args(["up"])
        .spawn();
    up.wait_for("stack is up", 60 * std::time::Duration::from_secs(1));
    let t = &up.test;
    let project = t
        .dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    let volume = format!("{project}_data");
    let sh = |script: &str| {
        t.run_args(["exec", "store", "--", "sh", "-c", script])
            .success()
            .stdout()
    };
    sh(
        "echo hello > /data/notes.txt && mkdir -p /data/sub && echo deep > /data/sub/x && chmod 600 /data/sub/x && chown 123:45 /data/sub/x",
    );
    let made = t.run_args(["backup", "--json"]).success();
    assert!(!made.stderr().contains("not archived"), "{}", made.stderr());
    let archive = archive_of(&made);
    assert_eq!(
        made.json()["volumes"][0]["name"],
        volume.as_str(),
        "{}",
        made.stdout()
    );
    assert_eq!(member(&archive, "dumps/store"), b"hello\n");
    // The data goes, then comes back from the archive, owners and modes too.
    sh("rm -rf /data/* && echo gone > /data/stray");
    t.run_args(["restore", archive.to_str().unwrap()])
        .success()
        .stdout_has(&format!("the Docker Engine's volume {volume}"));
    assert_eq!(sh("cat /data/notes.txt /data/sub/x"), "hello\ndeep\n");
    assert_eq!(sh("stat -c '%a %u:%g' /data/sub/x"), "600 123:45\n");
    assert_eq!(sh("ls /data"), "from-the-dump.txt\nnotes.txt\nsub\n");
    assert_eq!(sh("cat /data/from-the-dump.txt"), "hello\n");
    t.run_args(["down", "-v"]).success();
    assert_eq!(
        up.wait_exit(30 * std::time::Duration::from_secs(1)),
        Some(0)
    );
    let left = std::process::Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", &format!("name={volume}")])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty());
}
