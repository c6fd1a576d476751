//! Starts the server in-process on port 0 against a migrated temp database and
//! checks every endpoint with a real HTTP client and a real WebSocket client.
// Test helpers outside #[test] functions panic on purpose too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{client, get, post, send};
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use demo_api::{Config, DbError, Item, Server, StartError};

struct TestServer {
    addr: SocketAddr,
    dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data").join("demo.sqlite");
        assert_eq!(demo_api::migrate(&db).unwrap(), 3);
        let mut config = Config::new(0, db);
        config.replica = "7".to_owned();
        config.service = "api".to_owned();
        config.unhealthy_file = Some(dir.path().join("unhealthy"));
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            dir,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Starts the graceful shutdown; the returned handle ends when `run` does.
    fn stop(&mut self) -> &mut JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        &mut self.task
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_unhealthy_file() {
    let server = TestServer::start().await;
    let client = client();
    let ok = get(&client, &server.url("/health")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body, r#"{"status":"ok","replica":"7"}"#);
    assert_eq!(ok.headers["x-demo-replica"], "7");

    let flag = server.dir.path().join("unhealthy");
    std::fs::write(&flag, b"").unwrap();
    let sick = get(&client, &server.url("/health")).await;
    assert_eq!(sick.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sick.json()["status"], "unhealthy");

    std::fs::remove_file(&flag).unwrap();
    assert_eq!(
        get(&client, &server.url("/health")).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_bench_and_not_found() {
    let server = TestServer::start().await;
    let client = client();
    let who = get(&client, &server.url("/api/whoami")).await;
    assert_eq!(who.status, StatusCode::OK);
    assert_eq!(
        who.json(),
        serde_json::json!({"service": "api", "replica": "7", "pid": std::process::id()})
    );

    let bench = get(&client, &server.url("/bench")).await;
    assert_eq!(bench.status, StatusCode::OK);
    assert_eq!(bench.body, "ok\n");
    assert!(
        bench.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );

    let missing = get(&client, &server.url("/no/such/path")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"], "not found");

    let wrong_method = send(&client, Method::DELETE, &server.url("/health"), "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_list_create_and_reject() {
    let server = TestServer::start().await;
    let client = client();
    let url = server.url("/api/items");

    let seeded: Vec<Item> = serde_json::from_slice(&get(&client, &url).await.body).unwrap();
    assert_eq!(seeded.len(), 3);
    assert!(seeded.iter().all(|item| item.created_by == "migrate"));

    let created = post(&client, &url, r#"{"text":"  buy milk "}"#).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let item: Item = serde_json::from_slice(&created.body).unwrap();
    assert_eq!(item.text, "buy milk");
    assert_eq!(item.created_by, "7");
    assert_eq!(item.id, 4);

    let listed: Vec<Item> = serde_json::from_slice(&get(&client, &url).await.body).unwrap();
    assert_eq!(listed.last(), Some(&item));
    let last_two: Vec<Item> =
        serde_json::from_slice(&get(&client, &server.url("/api/items?limit=2")).await.body)
            .unwrap();
    assert_eq!(last_two.iter().map(|i| i.id).collect::<Vec<_>>(), [3, 4]);

    for bad in [
        "not json",
        r#"{"txt":"x"}"#,
        r#"{"text":42}"#,
        r#"{"text":"   "}"#,
        "",
    ] {
        let reply = post(&client, &url, bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "body {bad:?}");
        assert!(reply.json()["error"].is_string());
    }

    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(70 * 1024));
    let too_big = post(&client, &url, big).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_big.json()["error"].is_string());

    // Exactly at the limit is fine.
    let text = "y".repeat(demo_api::http::MAX_BODY - r#"{"text":""}"#.len());
    let at_limit = post(&client, &url, format!(r#"{{"text":"{text}"}}"#)).await;
    assert_eq!(at_limit.status, StatusCode::CREATED);

    let listed: Vec<Item> = serde_json::from_slice(&get(&client, &url).await.body).unwrap();
    assert_eq!(listed.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_waits() {
    let server = TestServer::start().await;
    let client = client();
    let start = Instant::now();
    let reply = get(&client, &server.url("/api/slow?ms=300")).await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["slept_ms"], 300);
    let bad = get(&client, &server.url("/api/slow?ms=soon")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sends_separate_chunks() {
    let server = TestServer::start().await;
    let client = client();
    let req = Request::get(server.url("/api/stream?n=4&ms=150"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let start = Instant::now();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");

    let mut body = resp.into_body();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            arrivals.push(start.elapsed());
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    assert_eq!(arrivals.len(), 4, "one chunk per event: {text}");
    // Spread over time as sent, not buffered into one late burst.
    assert!(
        arrivals[3] - arrivals[0] >= Duration::from_millis(400),
        "{arrivals:?}"
    );
    for seq in 1..=4 {
        assert!(text.contains(&format!("id: {seq}\n")), "{text}");
    }
    assert_eq!(text.matches("\n\n").count(), 4);
    assert!(text.contains(r#"data: {"seq":4,"remaining":0,"replica":"7"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_reports_the_request() {
    let server = TestServer::start().await;
    let client = client();
    let req = Request::get(server.url("/api/echo?a=1&b=two"))
        .header("X-Forwarded-For", "10.0.0.1")
        .header("X-Multi", "one")
        .header("X-Multi", "two")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let echo: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/api/echo");
    assert_eq!(echo["query"], "a=1&b=two");
    assert_eq!(echo["headers"]["x-forwarded-for"], "10.0.0.1");
    assert_eq!(echo["headers"]["x-multi"], "one, two");
    assert_eq!(echo["headers"]["host"], server.addr.to_string());
    assert_eq!(echo["body_length"], 0);
    assert_eq!(echo["replica"], "7");

    let posted = post(&client, &server.url("/api/echo"), vec![b'z'; 100_000]).await;
    let echo = posted.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["query"], "");
    assert_eq!(echo["body_length"], 100_000);
    assert_eq!(echo["headers"]["content-length"], "100000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_hello_echo_ping_close() {
    let server = TestServer::start().await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);

    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(hello, Message::text(r#"{"hello":"replica 7"}"#));

    ws.send(Message::text("hi there")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi there"));

    let blob = Bytes::from_static(&[0, 1, 2, 254, 255]);
    ws.send(Message::Binary(blob.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Binary(blob));

    ws.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"p"))
    );

    ws.close(None).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(_))) | None => {}
        other => panic!("expected the close reply, got {other:?}"),
    }

    // Plain GET without the upgrade headers.
    let plain = get(&client(), &server.url("/ws")).await;
    assert_eq!(plain.status, StatusCode::UPGRADE_REQUIRED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_and_closes_websockets() {
    let mut server = TestServer::start().await;
    let client = client();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    let _hello = ws.next().await.unwrap().unwrap();

    let slow_url = server.url("/api/slow?ms=400");
    let slow = tokio::spawn({
        let client = client.clone();
        async move { get(&client, &slow_url).await.status }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let run = server.stop();

    // The WebSocket gets a "going away" close.
    match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
    drop(ws);

    assert_eq!(slow.await.unwrap(), StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(3), run)
        .await
        .unwrap()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));

    // No longer accepting.
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "listener still open after shutdown"
    );
}

#[tokio::test]
async fn refuses_an_unmigrated_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");
    let err = Server::bind(Config::new(0, &db)).await.unwrap_err();
    assert!(
        matches!(err, StartError::Db(DbError::SchemaMissing(_))),
        "{err}"
    );
    assert!(err.to_string().contains("demo-api migrate"), "{err}");
    assert!(!db.exists(), "the server must not create the database");

    // An empty SQLite file has no schema either.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE other (x)")
        .unwrap();
    let err = Server::bind(Config::new(0, &db)).await.unwrap_err();
    assert!(matches!(err, StartError::Db(DbError::SchemaMissing(_))));
}

#[test]
fn migrate_is_idempotent_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("dir").join("demo.sqlite");
    assert_eq!(demo_api::migrate(&db).unwrap(), 3);
    assert_eq!(demo_api::migrate(&db).unwrap(), 3);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, demo_api::db::SCHEMA_VERSION);
}
