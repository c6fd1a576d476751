//! A recording fake runtime for tests of ordering, backoff and restarts
//! under `tokio::time::pause()`.
//!
//! Each spawned process follows the script registered for its label prefix
//! (service name): it runs for a while and exits with a code, or runs until
//! signalled (by a signal it does not ignore). Probes answer from a scripted queue. Every spawn and signal is
//! recorded with the (paused) clock's time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    BoxFuture, Exit, Pipe, Probe, ProbeResult, Process, ProcessSpec, Runtime, SpawnError, Stats,
};

/// What a fake process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    /// Exit by itself after this long, with `code`; None runs until signalled.
    pub run_for: Option<Duration>,
    pub code: i32,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Spawn {
        label: String,
        at: Duration,
    },
    Signal {
        label: String,
        signal: i32,
        at: Duration,
    },
    Probe {
        label: String,
        at: Duration,
    },
}

#[derive(Debug, Default)]
struct Inner {
    scripts: BTreeMap<String, Script>,
    probes: BTreeMap<String, VecDeque<ProbeResult>>,
    records: Vec<Record>,
    fail_spawn: BTreeMap<String, SpawnError>,
    ignored: BTreeMap<String, Vec<i32>>,
    next_pid: u32,
}

/// The fake.
#[derive(Debug, Clone)]
pub struct FakeRuntime {
    inner: Arc<Mutex<Inner>>,
    epoch: Instant,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    pub fn new() -> Self {
        FakeRuntime {
            inner: Arc::new(Mutex::new(Inner {
                next_pid: 1000,
                ..Inner::default()
            })),
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Processes of `service` follow `script`.
    pub fn script(&self, service: &str, script: Script) {
        self.lock().scripts.insert(service.to_string(), script);
    }

    /// Probes of `label` (e.g. `db-1 healthcheck`) answer these in order,
    /// then keep answering the last one.
    pub fn probes(&self, label: &str, results: Vec<ProbeResult>) {
        self.lock().probes.insert(label.to_string(), results.into());
    }

    /// Processes of `service` ignore `signal` (recorded all the same), as
    /// a process that traps it and goes on would.
    pub fn ignore(&self, service: &str, signal: i32) {
        self.lock()
            .ignored
            .entry(service.to_string())
            .or_default()
            .push(signal);
    }

    /// Spawning `service` fails with `error`.
    pub fn fail_spawn(&self, service: &str, error: SpawnError) {
        self.lock().fail_spawn.insert(service.to_string(), error);
    }

    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    /// Times at which processes with this label were spawned.
    pub fn spawns(&self, label: &str) -> Vec<Duration> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Spawn { label: l, at } if l == label => Some(at),
                _ => None,
            })
            .collect()
    }

    fn now(&self) -> Duration {
        Instant::now().duration_since(self.epoch)
    }
}

fn service_of(label: &str) -> &str {
    let first = label.split(' ').next().unwrap_or(label);
    first.rsplit_once('-').map_or(first, |(s, _)| s)
}

impl FakeRuntime {
    fn spawn_now(&self, spec: &ProcessSpec) -> Result<Box<dyn Process>, SpawnError> {
        let at = self.now();
        let mut inner = self.lock();
        let service = service_of(&spec.label).to_string();
        if let Some(e) = inner.fail_spawn.get(&service) {
            return Err(e.clone());
        }
        inner.records.push(Record::Spawn {
            label: spec.label.clone(),
            at,
        });
        inner.next_pid += 1;
        let script = inner.scripts.get(&service).copied().unwrap_or(Script {
            run_for: None,
            code: 0,
        });
        let ignored = inner.ignored.get(&service).cloned().unwrap_or_default();
        let (signal_tx, signal_rx) = watch::channel(None);
        Ok(Box::new(FakeProcess {
            pid: inner.next_pid,
            label: spec.label.clone(),
            script,
            ignored,
            started: Instant::now(),
            signal_tx,
            signal_rx,
            runtime: self.clone(),
        }))
    }
}

impl Runtime for FakeRuntime {
    fn spawn<'a>(
        &'a self,
        spec: &'a ProcessSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, SpawnError>> {
        Box::pin(std::future::ready(self.spawn_now(spec)))
    }

    fn probe(&self, probe: &Probe, _timeout: Duration) -> BoxFuture<'static, ProbeResult> {
        let label = match probe {
            Probe::Command(spec) => spec.label.clone(),
            Probe::Http { addr, .. } | Probe::Tcp { addr } => format!("addr {addr}"),
        };
        let at = self.now();
        let mut inner = self.lock();
        inner.records.push(Record::Probe {
            label: label.clone(),
            at,
        });
        let result = match inner.probes.get_mut(&label) {
            Some(q) if q.len() > 1 => q.pop_front().unwrap_or(ProbeResult::Pass),
            Some(q) => q.front().cloned().unwrap_or(ProbeResult::Pass),
            None => ProbeResult::Pass,
        };
        Box::pin(async move { result })
    }
}

struct FakeProcess {
    pid: u32,
    label: String,
    script: Script,
    ignored: Vec<i32>,
    started: Instant,
    signal_tx: watch::Sender<Option<i32>>,
    signal_rx: watch::Receiver<Option<i32>>,
    runtime: FakeRuntime,
}

impl Process for FakeProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn signal(&self, signal: i32) -> std::io::Result<()> {
        let at = self.runtime.now();
        self.runtime.lock().records.push(Record::Signal {
            label: self.label.clone(),
            signal,
            at,
        });
        if !self.ignored.contains(&signal) {
            self.signal_tx.send_replace(Some(signal));
        }
        Ok(())
    }

    fn wait(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        Box::pin(async move {
            let natural = async {
                match self.script.run_for {
                    Some(d) => {
                        tokio::time::sleep_until(self.started + d).await;
                        Exit::Code(self.script.code)
                    }
                    None => std::future::pending().await,
                }
            };
            let mut rx = self.signal_rx.clone();
            let signalled = async move {
                loop {
                    if let Some(sig) = *rx.borrow_and_update() {
                        return Exit::Signal(sig);
                    }
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            Ok(tokio::select! {
                e = natural => e,
                e = signalled => e,
            })
        })
    }

    fn take_output(&mut self) -> Option<(Pipe, Pipe)> {
        Some((Box::new(tokio::io::empty()), Box::new(tokio::io::empty())))
    }

    fn stats(&self) -> Option<Stats> {
        None
    }
}
