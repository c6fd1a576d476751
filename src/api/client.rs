//! The control API client: the verbs that talk to a running stack.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::{ApiError, socket_path};

/// Why a request to the stack failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No stack answers on the socket.
    #[error("project {project} is not running (no stack answers on {socket})")]
    NotRunning { project: String, socket: String },
    /// The socket belongs to another user.
    #[error(
        "permission denied: project {project}'s stack belongs to another user (cannot open {socket})"
    )]
    PermissionDenied { project: String, socket: String },
    /// The stack answered with an error.
    #[error("{0}")]
    Api(String),
    #[error("talking to the stack: {0}")]
    Io(String),
}

/// A client for one project's stack.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    project: String,
}

impl Client {
    pub fn new(state_dir: &Path, project: &str) -> Client {
        Client {
            socket: socket_path(state_dir),
            project: project.to_string(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            let (project, socket) = (self.project.clone(), self.socket.display().to_string());
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                ClientError::PermissionDenied { project, socket }
            } else {
                ClientError::NotRunning { project, socket }
            }
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "berth")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?
            .to_bytes();
        let message = serde_json::from_slice::<ApiError>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        Err(ClientError::Api(message))
    }

    async fn read<T: serde::de::DeserializeOwned>(
        resp: hyper::Response<hyper::body::Incoming>,
    ) -> Result<T, ClientError> {
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Io(format!("bad reply: {e}")))
    }

    /// `GET path`, JSON reply.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.send(Method::GET, path, Bytes::new()).await?;
        Self::read(resp).await
    }

    /// `POST path` with a JSON body, JSON reply.
    pub async fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Io(e.to_string()))?;
        let resp = self.send(Method::POST, path, Bytes::from(body)).await?;
        Self::read(resp).await
    }

    /// `GET path` streaming lines to `on_line` until it returns false or the
    /// stream ends.
    pub async fn lines(
        &self,
        path: &str,
        mut on_line: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), ClientError> {
        let resp = self.send(Method::GET, path, Bytes::new()).await?;
        let mut body = resp.into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            // A stream cut off means the stack went away: the end of it.
            let Ok(frame) = frame else { return Ok(()) };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(pos) = memchr_nl(&pending) {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                if !on_line(&line[..line.len() - 1]) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|c| *c == b'\n')
}
