//! Real PostgreSQL from Debian's packages, run natively the way the
//! reference stacks run the postgres image: as user `postgres`, its data in
//! a named volume initialised by a one-shot service, a `pg_isready` health
//! check, and a dependent that connects and queries once it is healthy.

use std::time::Duration;

use crate::support::{Test, postgres_bin};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn postgres_runs_natively_as_its_user_healthy_before_its_client() {
    if !nix::unistd::geteuid().is_root() {
        // Running as `postgres` takes root; CI runs as root.
        eprintln!("not root: cannot switch to user postgres here");
        return;
    }
    let bin = postgres_bin();
    let bin = bin.display();
    let t = Test::new().compose(&format!(
        r#"
services:
  init:
    user: postgres
    volumes: ["pgdata:/var/lib/postgresql/data"]
    command: [sh, -c, 'test -s "$$BERTH_VOLUME_VAR_LIB_POSTGRESQL_DATA/PG_VERSION" || {bin}/initdb -D "$$BERTH_VOLUME_VAR_LIB_POSTGRESQL_DATA" -U app --auth=trust >/dev/null']
  db:
    user: postgres
    volumes: ["pgdata:/var/lib/postgresql/data"]
    command: [sh, -c, 'exec {bin}/postgres -D "$$BERTH_VOLUME_VAR_LIB_POSTGRESQL_DATA" -c listen_addresses=127.0.0.1 -c port=$$PORT -c unix_socket_directories=']
    # Where the other services reach it (natively: localhost and the
    # declared port); no other test declares this one.
    expose: ["54329"]
    depends_on: {{init: {{condition: service_completed_successfully}}}}
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -q -h 127.0.0.1 -p $$PORT -U app"]
      interval: 1s
      start_interval: 100ms
      retries: 30
  client:
    command: [sh, -c, 'psql -h 127.0.0.1 -p 54329 -U app -tAc "create table t(n int); insert into t values (41); select n + 1 from t" postgres; exec sleep 60']
    depends_on: {{db: {{condition: service_healthy}}}}
"#
    ));
    let mut up = t.arg("up").spawn();
    up.wait_for("client-1", 60 * SEC);
    up.wait_for_line(
        "the client's answer",
        |l| l.starts_with("client-1") && l.ends_with("| 42"),
        60 * SEC,
    );
    let ps = up.test.run_args(["ps", "--format", "json"]).json();
    let db = ps["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "db")
        .unwrap()
        .clone();
    assert_eq!(db["replicas"][0]["health"], "healthy", "{db}");
    let data = up.test.dir().join(".berth/volumes");
    let owners: Vec<u32> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| std::os::unix::fs::MetadataExt::uid(&e.unwrap().metadata().unwrap()))
        .collect();
    let postgres = nix::unistd::User::from_name("postgres")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    assert_eq!(owners, [postgres], "the data volume is postgres's");
    assert_eq!(up.interrupt(), Some(130));
}
