//! A deploy's changes to the running edge proxy: routes (and what they
//! carry: body limits, response timeouts), `health_path`, `metrics_path`,
//! `access_log`, `max_header_size` and the timeouts are compiled and
//! swapped in, listeners are added and retired: all of `x-berth.proxy`
//! applies live.

use berth_compose::Project;
use berth_compose::xberth::ProxySettings;
use serde_json::{Map, Value as Json};

use super::DeployReport;
use super::state::State;

/// How the proxy's settings change: the keys applied live, and those
/// applied at the next start.
#[derive(Debug, Default)]
pub struct ProxyChange {
    pub live: Vec<String>,
    pub later: Vec<String>,
}

/// Keys a running proxy takes live: all of them.
const LIVE: &[&str] = &[
    "routes",
    "max_body_size",
    "listen",
    "health_path",
    "metrics_path",
    "access_log",
    "max_header_size",
    "timeouts",
    "listen_tls",
    "tls",
    "redirect_http",
    "hsts",
    "trusted_proxies",
];

fn fields(p: Option<&ProxySettings>) -> Map<String, Json> {
    match p.map(serde_json::to_value) {
        Some(Ok(Json::Object(map))) => map,
        _ => Map::new(),
    }
}

impl ProxyChange {
    pub fn of(old: Option<&ProxySettings>, new: Option<&ProxySettings>) -> ProxyChange {
        let mut change = ProxyChange::default();
        if old.is_none() || new.is_none() {
            // Started or removed as a whole: at the next start.
            if old != new {
                change.later.push("the proxy".to_string());
            }
            return change;
        }
        let (old, new) = (fields(old), fields(new));
        for key in old.keys().chain(new.keys()) {
            let seen = change.live.contains(key) || change.later.contains(key);
            if seen || old.get(key) == new.get(key) {
                continue;
            }
            if LIVE.contains(&key.as_str()) {
                change.live.push(key.clone());
            } else {
                change.later.push(key.clone());
            }
        }
        change
    }

    /// Lines for the plan.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.live.is_empty() {
            lines.push(format!(
                "proxy: {} changed (applied live)",
                self.live.join(", ")
            ));
        }
        if !self.later.is_empty() {
            lines.push(format!(
                "proxy: {} changed (applied at the next start: berth down, berth up)",
                self.later.join(", ")
            ));
        }
        lines
    }
}

/// What of `new` the running proxy took live, into `running`.
pub fn take_live(running: &mut ProxySettings, new: ProxySettings) {
    *running = new;
}

/// Swaps the new routes into the running proxy and makes it listen where
/// the file says; whether it did.
pub fn apply(state: &State, new: &Project, report: &mut DeployReport) -> bool {
    let (Some(table), Some(settings)) = (&state.routes, &new.settings.proxy) else {
        report
            .done
            .push("proxy: not running; its settings apply at the next start".to_string());
        return false;
    };
    let addrs = match table.listen(&settings.listen, &settings.listen_tls) {
        Ok((plain, tls)) => crate::cli::proxy_urls(&plain, &tls),
        Err(e) => {
            report.done.push(format!("proxy: nothing changed ({e})"));
            return false;
        }
    };
    let mut settings = settings.clone();
    if let Some(dashboard) = state.dashboard.get() {
        dashboard.mount(&mut settings);
    }
    if let Err(e) = table.replace(&settings) {
        report.done.push(format!("proxy: routes not changed ({e})"));
        return false;
    }
    report.done.push(format!(
        "proxy: routes swapped in; listening on {}",
        addrs.join(", ")
    ));
    *state
        .proxy
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = addrs;
    true
}
