//! What the control API's handlers share: the stack's state, and the
//! streaming (NDJSON) response.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use berth_engine::Stack;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::Response;
use hyper::body::Frame;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Down, Report};

pub type Body = BoxBody<Bytes, Infallible>;

/// A `down` request handed to the `up` process, answered when done.
pub type DownRequest = (Down, oneshot::Sender<Report>);

/// What the handlers read.
pub struct State {
    pub stack: Arc<Stack>,
    pub project: String,
    pub started_at: SystemTime,
    /// Where the edge proxy listens (a deploy may change it).
    pub proxy: std::sync::Mutex<Vec<String>>,
    pub down: mpsc::Sender<DownRequest>,
    /// The log pipeline, for what could not be written.
    pub logs: berth_engine::logs::LogHub,
    /// Cancelled when the server shuts down: streams end.
    pub shutdown: CancellationToken,
    /// The project as the stack runs it now (the last deploy's).
    pub running: std::sync::Mutex<berth_compose::Project>,
    /// berth's own environment, which services inherit.
    pub inherited: std::collections::BTreeMap<String, String>,
    pub state_dir: std::path::PathBuf,
    /// The edge proxy's route table, when it runs.
    pub routes: Option<berth_proxy::RouteTable>,
    /// Each deploy's outcome, for `berth events`.
    pub deploys: tokio::sync::broadcast::Sender<serde_json::Value>,
    /// Held while a deploy runs: one at a time.
    pub deploying: tokio::sync::Mutex<()>,
    /// The dashboard, once it serves.
    pub dashboard: std::sync::OnceLock<Arc<dyn Dashboard>>,
}

/// The dashboard, as the control API sees it: `berth dashboard`'s login
/// link, and its route on the edge proxy (kept when a deploy swaps the
/// routes).
pub trait Dashboard: Send + Sync {
    /// Its URLs and a login code that works once.
    ///
    /// # Errors
    /// No randomness for the code.
    fn login(&self, proxy: &[String]) -> anyhow::Result<serde_json::Value>;

    /// Adds its route to `proxy`, when it is mounted there.
    fn mount(&self, proxy: &mut berth_compose::xberth::ProxySettings);
}

impl State {
    /// The project as the stack runs it now.
    pub fn model(&self) -> berth_compose::Project {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A streaming response of NDJSON lines from `rx`; it ends when `rx`
/// closes or the server shuts down.
pub fn ndjson(rx: mpsc::Receiver<Bytes>, shutdown: CancellationToken) -> Response<Body> {
    let stream = futures_util::stream::unfold((rx, shutdown), |(mut rx, shutdown)| async move {
        let next = tokio::select! {
            b = rx.recv() => b,
            () = shutdown.cancelled() => None,
        };
        next.map(|b| (Ok::<_, Infallible>(Frame::data(b)), (rx, shutdown)))
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}
