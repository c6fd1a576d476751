//! Routing and the HTTP endpoints.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use hyper::header::{ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::App;
use crate::body::{Body, SseStream};
use crate::db;

/// Largest accepted `POST /api/items` body.
pub const MAX_BODY: usize = 64 * 1024;
/// An oversized body is read and thrown away up to this size before the 413,
/// so that the client sees the answer rather than a reset connection.
const MAX_DRAIN: u64 = 1024 * 1024;
/// Upper bound of `/api/slow?ms=`.
pub const MAX_SLOW_MS: u64 = 60_000;
/// Upper bounds of `/api/stream`.
const MAX_STREAM_EVENTS: u32 = 100_000;
const MAX_STREAM_INTERVAL_MS: u64 = 60_000;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

pub fn respond(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => respond(status, JSON, Bytes::from(bytes)),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message, "status": status.as_u16() });
    respond(status, JSON, Bytes::from(body.to_string()))
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

fn db_error(err: &db::DbError) -> Response<Body> {
    eprintln!("demo-api: {err}");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("database error: {err}"),
    )
}

/// The raw value of query parameter `name` (no percent-decoding: only numbers
/// are read from the query).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// `Ok(None)` when absent; `Err` names the parameter when it is not a number.
fn numeric_param(query: Option<&str>, name: &'static str) -> Result<Option<u64>, BadParam> {
    match query_param(query, name) {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse().map(Some).map_err(|_| BadParam(name)),
    }
}

/// A query parameter that should have been a non-negative integer.
struct BadParam(&'static str);

impl BadParam {
    fn response(&self) -> Response<Body> {
        json_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "query parameter `{}` must be a non-negative integer",
                self.0
            ),
        )
    }
}

/// Routes one request. Adds the `x-demo-replica` header to every answer.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let is_get = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut resp = match req.uri().path() {
        "/bench" if is_get => respond(StatusCode::OK, TEXT, Bytes::from_static(b"ok\n")),
        "/health" if is_get => health(&app),
        "/api/whoami" if is_get => respond(StatusCode::OK, JSON, app.whoami.clone()),
        "/api/items" => match *req.method() {
            Method::GET | Method::HEAD => list_items(&app, req.uri().query()).await,
            Method::POST => create_item(&app, req).await,
            _ => method_not_allowed("GET, HEAD, POST"),
        },
        "/api/slow" if is_get => slow(&app, req.uri().query()).await,
        "/api/counter" if is_get => counter(&app).await,
        "/api/stream" if is_get => stream(&app, req.uri().query()),
        "/api/echo" => echo(&app, req).await,
        "/ws" => crate::ws::upgrade(&app, req),
        "/bench" | "/health" | "/api/whoami" | "/api/slow" | "/api/stream" => {
            method_not_allowed("GET, HEAD")
        }
        _ => json_error(StatusCode::NOT_FOUND, "not found"),
    };
    if let Some(replica) = &app.replica_header {
        resp.headers_mut()
            .insert(crate::REPLICA_HEADER, replica.clone());
    }
    resp
}

fn health(app: &App) -> Response<Body> {
    let unhealthy = app
        .config
        .unhealthy_file
        .as_deref()
        .is_some_and(std::path::Path::exists);
    let mut resp = if unhealthy {
        respond(
            StatusCode::SERVICE_UNAVAILABLE,
            JSON,
            app.health_unhealthy.clone(),
        )
    } else {
        respond(StatusCode::OK, JSON, app.health_ok.clone())
    };
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn list_items(app: &Arc<App>, query: Option<&str>) -> Response<Body> {
    let limit = match numeric_param(query, "limit") {
        Ok(limit) => limit.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        Err(bad) => return bad.response(),
    };
    match app.store.list(limit).await {
        Ok(body) => respond(StatusCode::OK, JSON, Bytes::from(body)),
        Err(e) => db_error(&e),
    }
}

enum ReadError {
    TooLarge { drained: bool },
    Io(hyper::Error),
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(mut body: Incoming, limit: usize) -> Result<Bytes, ReadError> {
    if body.size_hint().lower() > MAX_DRAIN {
        return Err(ReadError::TooLarge { drained: false });
    }
    let mut buf = BytesMut::new();
    let mut total: u64 = 0;
    let mut too_large = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Io)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if too_large || total > limit as u64 {
            too_large = true;
            if total > MAX_DRAIN {
                return Err(ReadError::TooLarge { drained: false });
            }
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if too_large {
        Err(ReadError::TooLarge { drained: true })
    } else {
        Ok(buf.freeze())
    }
}

#[derive(Deserialize)]
struct NewItem {
    text: String,
}

async fn create_item(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let body = match read_limited(req.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(ReadError::TooLarge { drained }) => {
            let mut resp = json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("body larger than {MAX_BODY} bytes"),
            );
            if !drained {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
        Err(ReadError::Io(e)) => {
            return json_error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}"));
        }
    };
    let new: NewItem = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("expected JSON {{\"text\": \"...\"}}: {e}"),
            );
        }
    };
    let text = new.text.trim();
    if text.is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "`text` must not be empty");
    }
    let text = text.to_owned();
    let replica = Arc::clone(&app.replica);
    match app.store.insert(text, replica).await {
        Ok(item) => {
            if let Some(counter) = &app.counter
                && let Err(e) = counter.increment().await
            {
                eprintln!("demo-api: the Redis counter did not move: {e}");
            }
            json(StatusCode::CREATED, &item)
        }
        Err(e) => db_error(&e),
    }
}

/// `{"items_added": N}` from Redis (404 without `REDIS_URL`).
async fn counter(app: &App) -> Response<Body> {
    let Some(counter) = &app.counter else {
        return json_error(StatusCode::NOT_FOUND, "no Redis: set REDIS_URL");
    };
    match counter.get().await {
        Ok(n) => json(StatusCode::OK, &serde_json::json!({ "items_added": n })),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &format!("redis: {e}")),
    }
}

async fn slow(app: &App, query: Option<&str>) -> Response<Body> {
    let ms = match numeric_param(query, "ms") {
        Ok(ms) => ms.unwrap_or(1000).min(MAX_SLOW_MS),
        Err(bad) => return bad.response(),
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    json(
        StatusCode::OK,
        &serde_json::json!({ "slept_ms": ms, "replica": &*app.replica }),
    )
}

fn stream(app: &App, query: Option<&str>) -> Response<Body> {
    let (n, ms) = match (numeric_param(query, "n"), numeric_param(query, "ms")) {
        (Ok(n), Ok(ms)) => (n.unwrap_or(5), ms.unwrap_or(100)),
        (Err(bad), _) | (_, Err(bad)) => return bad.response(),
    };
    let n = u32::try_from(n).unwrap_or(u32::MAX).min(MAX_STREAM_EVENTS);
    let interval = Duration::from_millis(ms.min(MAX_STREAM_INTERVAL_MS));
    let mut resp = Response::new(Body::Sse(SseStream::new(
        n,
        interval,
        Arc::clone(&app.replica),
    )));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn echo(app: &App, req: Request<Incoming>) -> Response<Body> {
    let (parts, mut body) = req.into_parts();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let joined = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(", ");
        // HeaderName is always lowercase already.
        headers.insert(name.as_str().to_owned(), joined.into());
    }
    let mut body_length: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_length += data.len() as u64;
                }
            }
            Err(e) => {
                return json_error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}"));
            }
        }
    }
    json(
        StatusCode::OK,
        &serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query().unwrap_or(""),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_length": body_length,
            "replica": &*app.replica,
            "service": &*app.config.service,
        }),
    )
}
