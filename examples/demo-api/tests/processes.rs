//! Runs the built binary as real processes: the migrate job, two replicas
//! writing to one database at the same time, and SIGTERM while a request is in
//! flight.
// Test helpers outside #[test] functions panic on purpose too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{client, get, post};
use futures_util::StreamExt as _;
use hyper::StatusCode;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use demo_api::Item;

const BIN: &str = env!("CARGO_BIN_EXE_demo-api");

fn command(db: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("DEMO_DB", db)
        .env_remove("PORT")
        .env_remove("BERTH_REPLICA")
        .env_remove("DEMO_UNHEALTHY_FILE")
        .kill_on_drop(true);
    cmd
}

async fn run_migrate(db: &Path) {
    let out = command(db).arg("migrate").output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "migration done (3 items)"
    );
}

/// Starts a replica on a free port; returns it with its port once it listens.
async fn start_replica(db: &Path, replica: &str) -> (Child, u16) {
    let mut child = command(db)
        .env("PORT", "0")
        .env("BERTH_REPLICA", replica)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("no listening line within 10 s")
        .unwrap()
        .unwrap();
    let prefix = format!("demo-api replica {replica} listening on 127.0.0.1:");
    let port = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

fn sigterm(child: &Child) {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn bad_configuration_exits_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");

    let no_port = command(&db).output().await.unwrap();
    assert_eq!(no_port.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_port.stderr).contains("PORT is not set"));

    let bad_port = command(&db).env("PORT", "http").output().await.unwrap();
    assert_eq!(bad_port.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_port.stderr).contains("invalid PORT"));

    let bad_flag = command(&db)
        .args(["--port", "99999"])
        .output()
        .await
        .unwrap();
    assert_eq!(bad_flag.status.code(), Some(2));

    let unmigrated = command(&db).env("PORT", "0").output().await.unwrap();
    assert_eq!(unmigrated.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unmigrated.stderr);
    assert!(stderr.contains("run `demo-api migrate`"), "{stderr}");

    run_migrate(&db).await;
    run_migrate(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_write_concurrently() {
    const PER_REPLICA: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("demo.sqlite");
    run_migrate(&db).await;
    let (mut one, port_one) = start_replica(&db, "1").await;
    let (mut two, port_two) = start_replica(&db, "2").await;
    let client = client();

    let writes = [(port_one, "1"), (port_two, "2")]
        .into_iter()
        .flat_map(|(port, replica)| {
            (0..PER_REPLICA).map(move |i| (port, format!("item {i} via replica {replica}")))
        })
        .map(|(port, text)| {
            let client = client.clone();
            async move {
                let url = format!("http://127.0.0.1:{port}/api/items");
                let body = serde_json::json!({ "text": text }).to_string();
                let reply = post(&client, &url, body).await;
                assert_eq!(
                    reply.status,
                    StatusCode::CREATED,
                    "{}",
                    String::from_utf8_lossy(&reply.body)
                );
                serde_json::from_slice::<Item>(&reply.body).unwrap()
            }
        });
    // Interleave both replicas, 32 requests in flight.
    let start = Instant::now();
    let created: Vec<Item> = futures_util::stream::iter(writes)
        .buffer_unordered(32)
        .collect()
        .await;
    eprintln!(
        "{} concurrent POSTs took {:?}",
        created.len(),
        start.elapsed()
    );
    assert_eq!(created.len(), 2 * PER_REPLICA);

    // Each replica sees every row, whoever wrote it.
    for port in [port_one, port_two] {
        let reply = get(&client, &format!("http://127.0.0.1:{port}/api/items")).await;
        let items: Vec<Item> = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(items.len(), 3 + 2 * PER_REPLICA);
        let ids: HashSet<i64> = items.iter().map(|i| i.id).collect();
        assert_eq!(ids.len(), items.len(), "duplicate ids");
        for replica in ["1", "2"] {
            let mine: HashSet<&str> = items
                .iter()
                .filter(|i| i.created_by == replica)
                .map(|i| i.text.as_str())
                .collect();
            assert_eq!(mine.len(), PER_REPLICA, "rows of replica {replica}");
        }
        for item in &created {
            assert!(items.contains(item), "missing {item:?}");
        }
    }

    sigterm(&one);
    sigterm(&two);
    assert!(one.wait().await.unwrap().success());
    assert!(two.wait().await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_request_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");
    run_migrate(&db).await;
    let (mut child, port) = start_replica(&db, "3").await;
    let client = client();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        get(&client, &format!("{base}/health")).await.status,
        StatusCode::OK
    );

    let slow = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/api/slow?ms=500");
        async move {
            let start = Instant::now();
            let reply = get(&client, &url).await;
            (reply.status, reply.json(), start.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let signalled = Instant::now();
    sigterm(&child);

    // The listener closes at once...
    let refused = async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(2), refused)
        .await
        .expect("still accepting 2 s after SIGTERM");
    // ...but the request in flight completes.
    let (status, body, took) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["slept_ms"], 500);
    assert!(took >= Duration::from_millis(500));

    let exit = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("no exit within 5 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(signalled.elapsed() < Duration::from_secs(3));
}
