//! `GET /v1/logs`: history from the log files (`tail`, `since`, services),
//! then with `follow=1` the live stream, one JSON object per line. Live
//! records already in the files are not sent twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use berth_engine::logs::{Delivery, JsonRecord, LogFilter, LogRecord, parse_since, read_records};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::state::{State, ndjson};

pub fn record_json(r: &LogRecord) -> Vec<u8> {
    let ts = humantime::format_rfc3339_nanos(r.ts).to_string();
    let mut line = Vec::new();
    JsonRecord::new(r, &ts).write_line(&mut line);
    line
}

/// The filter described by query parameters.
///
/// # Errors
/// A `since` or `tail` that does not parse.
pub fn filter(query: &[(String, String)]) -> Result<LogFilter, String> {
    let mut f = LogFilter::default();
    for (k, v) in query {
        match k.as_str() {
            "service" => f.services.push(v.clone()),
            "tail" if v != "all" => {
                f.tail = Some(
                    v.parse()
                        .map_err(|_| format!("tail {v:?} is not a number"))?,
                )
            }
            "since" => {
                f.since = Some(parse_since(v, SystemTime::now()).map_err(|e| e.to_string())?)
            }
            _ => {}
        }
    }
    Ok(f)
}

pub fn serve(
    state: &State,
    query: &[(String, String)],
) -> hyper::Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>> {
    let follow = query.iter().any(|(k, v)| k == "follow" && v != "0");
    let filter = match filter(query) {
        Ok(f) => f,
        Err(e) => {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(Bytes::from(format!(
                "{}\n",
                serde_json::json!({ "error": e })
            )));
            return ndjson(rx, state.shutdown.clone());
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let hub = state.stack.logs().clone();
    let mut live = follow.then(|| hub.subscribe());
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        hub.flush().await;
        let dir = hub.dir().to_path_buf();
        let history_filter = filter.clone();
        let (htx, mut hrx) = mpsc::channel::<LogRecord>(1024);
        tokio::task::spawn_blocking(move || {
            for r in read_records(&dir, &history_filter).flatten() {
                if htx.blocking_send(r).is_err() {
                    return;
                }
            }
        });
        let mut last: HashMap<(Arc<str>, u32), SystemTime> = HashMap::new();
        while let Some(r) = hrx.recv().await {
            last.insert((r.service.clone(), r.replica), r.ts);
            if tx.send(Bytes::from(record_json(&r))).await.is_err() {
                return;
            }
        }
        let Some(live) = live.as_mut() else { return };
        loop {
            let delivery = tokio::select! {
                () = shutdown.cancelled() => return,
                d = live.recv() => match d {
                    Some(d) => d,
                    None => return,
                },
            };
            match delivery {
                Delivery::Records(batch) => {
                    for r in batch.iter() {
                        if !filter.wants_service(&r.service) {
                            continue;
                        }
                        if last
                            .get(&(r.service.clone(), r.replica))
                            .is_some_and(|t| r.ts <= *t)
                        {
                            continue;
                        }
                        if tx.send(Bytes::from(record_json(r))).await.is_err() {
                            return;
                        }
                    }
                }
                Delivery::Skipped(n) => {
                    if tx
                        .send(Bytes::from(format!("{{\"skipped\":{n}}}\n")))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    ndjson(rx, state.shutdown.clone())
}
