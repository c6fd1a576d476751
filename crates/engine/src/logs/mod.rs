//! Temporary log pipeline (replaced by the real one): drains pipes and
//! prints lines so the engine can be built and tried meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    System,
}

#[derive(Debug, Clone)]
pub struct LogRecord {
    pub ts: SystemTime,
    pub service: Arc<str>,
    pub replica: u32,
    pub stream: Stream,
    pub partial: bool,
    pub line: Bytes,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub service: Arc<str>,
    pub replica: u32,
    pub max_size: u64,
    pub max_files: u32,
}

#[derive(Debug, Clone)]
pub struct LogHub {
    tx: broadcast::Sender<Arc<[LogRecord]>>,
}

impl LogHub {
    pub fn new(_dir: PathBuf) -> std::io::Result<LogHub> {
        let (tx, _) = broadcast::channel(1024);
        Ok(LogHub { tx })
    }

    pub fn attach<O, E>(&self, source: Source, stdout: O, stderr: E) -> JoinHandle<()>
    where
        O: AsyncRead + Unpin + Send + 'static,
        E: AsyncRead + Unpin + Send + 'static,
    {
        let a = self.pump(source.clone(), Stream::Stdout, stdout);
        let b = self.pump(source, Stream::Stderr, stderr);
        tokio::spawn(async move {
            let _ = tokio::join!(a, b);
        })
    }

    fn pump<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        source: Source,
        stream: Stream,
        r: R,
    ) -> JoinHandle<()> {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).split(b'\n');
            while let Ok(Some(line)) = lines.next_segment().await {
                let rec = LogRecord {
                    ts: SystemTime::now(),
                    service: source.service.clone(),
                    replica: source.replica,
                    stream,
                    partial: false,
                    line: Bytes::from(line),
                };
                let _ = tx.send(Arc::from(vec![rec]));
            }
        })
    }

    pub fn system(&self, service: &str, replica: u32, text: impl Into<String>) {
        let rec = LogRecord {
            ts: SystemTime::now(),
            service: Arc::from(service),
            replica,
            stream: Stream::System,
            partial: false,
            line: Bytes::from(text.into()),
        };
        let _ = self.tx.send(Arc::from(vec![rec]));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[LogRecord]>> {
        self.tx.subscribe()
    }
}
