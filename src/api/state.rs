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

use super::{Down, Report};

pub type Body = BoxBody<Bytes, Infallible>;

/// A `down` request handed to the `up` process, answered when done.
pub type DownRequest = (Down, oneshot::Sender<Report>);

/// What the handlers read.
pub struct State {
    pub stack: Arc<Stack>,
    pub project: String,
    pub started_at: SystemTime,
    /// Where the edge proxy listens.
    pub proxy: Vec<String>,
    pub down: mpsc::Sender<DownRequest>,
    /// The log pipeline, for what could not be written.
    pub logs: berth_engine::logs::LogHub,
}

/// A body fed line by line from a channel (NDJSON streams).
pub fn ndjson(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}
