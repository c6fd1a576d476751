//! `GET /ws`: WebSocket upgrade through hyper, then an echo session run by
//! tokio-tungstenite over the upgraded connection.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY};
use hyper::header::{SEC_WEBSOCKET_VERSION, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::App;
use crate::body::Body;
use crate::http::json_error;

/// Whether a comma-separated header has `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Answers the handshake and spawns the session that takes over the connection.
pub fn upgrade(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET to open a WebSocket",
        );
    }
    let headers = req.headers();
    if !has_token(headers, CONNECTION, "upgrade") || !has_token(headers, UPGRADE, "websocket") {
        let mut resp = json_error(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint needs a WebSocket upgrade",
        );
        resp.headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        return resp;
    }
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut resp = json_error(StatusCode::BAD_REQUEST, "unsupported WebSocket version");
        resp.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return resp;
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return json_error(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let accept = match HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        Ok(accept) => accept,
        Err(_) => return json_error(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key"),
    };

    let app = Arc::clone(app);
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => session(app, TokioIo::new(upgraded)).await,
            Err(e) => eprintln!("demo-api: websocket upgrade failed: {e}"),
        }
    });

    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

/// Counts a live session while it exists (graceful shutdown waits for zero).
struct SessionGuard(Arc<App>);

impl SessionGuard {
    fn new(app: Arc<App>) -> Self {
        app.ws_sessions.send_modify(|n| *n += 1);
        Self(app)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.ws_sessions.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn session<S>(app: Arc<App>, io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let guard = SessionGuard::new(Arc::clone(&app));
    let mut shutdown = app.shutdown.subscribe();
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let hello = serde_json::json!({ "hello": format!("replica {}", app.config.replica) });
    if ws.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
                // Pongs to pings and the reply to a Close are queued by
                // tungstenite and flushed by the next read.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_))) => {}
                Some(Err(_)) | None => break,
            },
            () = async { let _ = shutdown.wait_for(|stopping| *stopping).await; } => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
                let _ = ws.close(Some(frame)).await;
                // Wait briefly for the peer's Close, then drop the connection.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                break;
            }
        }
    }
    drop(guard);
}
