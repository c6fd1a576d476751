//! `healthcheck` and `x-berth.ready` to probes.
//!
//! A health check keeps its meaning: it is the liveness probe (berth, like
//! the kubelet, restarts what turns unhealthy) and, unless `x-berth.ready`
//! says how to tell readiness, the readiness probe too; `interval`,
//! `timeout` and `retries` map to `periodSeconds`, `timeoutSeconds` and
//! `failureThreshold`, and a `start_period` becomes a startup probe that
//! allows the same time before the first success.

use berth_compose::{Duration, HealthCheck, HealthTest, ReadyProbe, Service};
use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::context::Ctx;
use crate::units::seconds;

/// The probes of the main container.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Probes {
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    pub startup: Option<Probe>,
}

/// How often berth probes until the first success when `start_interval`
/// is not set.
const START_INTERVAL: Duration = Duration::from_std(std::time::Duration::from_secs(1));

/// The probes for a service whose first declared TCP port is `port`.
pub(crate) fn probes(ctx: &mut Ctx<'_>, s: &Service, port: Option<u16>) -> Probes {
    let mut out = Probes::default();
    if let Some(hc) = &s.healthcheck {
        match &hc.test {
            HealthTest::Cmd(argv) => health(&mut out, hc, argv.clone()),
            HealthTest::Shell(script) => {
                health(&mut out, hc, vec!["sh".into(), "-c".into(), script.clone()]);
            }
            HealthTest::Inherit if !hc.disable => ctx.warn(
                format!("services.{}.healthcheck", s.name),
                "has no test: it relies on the image's HEALTHCHECK, which Kubernetes ignores; no probe is made",
            ),
            HealthTest::Inherit | HealthTest::Disabled => {}
        }
    }
    if let Some(ready) = &s.settings.ready {
        let place = format!("services.{}.x-berth.ready", s.name);
        let probe = |p: Probe| Probe {
            period_seconds: Some(seconds(ready.interval)),
            timeout_seconds: Some(seconds(ready.timeout)),
            ..p
        };
        match (&ready.probe, port) {
            (ReadyProbe::Http(path), Some(port)) => {
                out.readiness = Some(probe(Probe {
                    http_get: Some(HTTPGetAction {
                        path: Some(path.clone()),
                        port: IntOrString::Int(i32::from(port)),
                        ..HTTPGetAction::default()
                    }),
                    ..Probe::default()
                }));
            }
            (ReadyProbe::Tcp, Some(port)) => {
                out.readiness = Some(probe(Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(i32::from(port)),
                        host: None,
                    }),
                    ..Probe::default()
                }));
            }
            (ReadyProbe::Http(_) | ReadyProbe::Tcp, None) => ctx.warn(
                place,
                "the service declares no TCP port to probe: no readiness probe is made",
            ),
            (ReadyProbe::Log(_), _) => ctx.warn(
                place,
                "a log line cannot be a Kubernetes probe: readiness comes from the healthcheck, if any",
            ),
        }
    }
    out
}

/// A health check's probes; readiness only when no ready probe replaces it
/// (the caller's `x-berth.ready` comes after and overrides it).
fn health(out: &mut Probes, hc: &HealthCheck, command: Vec<String>) {
    let exec = Some(ExecAction {
        command: Some(command),
    });
    let probe = Probe {
        exec: exec.clone(),
        period_seconds: Some(seconds(hc.interval)),
        timeout_seconds: Some(seconds(hc.timeout)),
        failure_threshold: Some(failure_threshold(hc.retries)),
        ..Probe::default()
    };
    out.readiness = Some(probe.clone());
    out.liveness = Some(probe);
    if let Some(start) = hc.start_period {
        let period = seconds(hc.start_interval.unwrap_or(START_INTERVAL));
        out.startup = Some(Probe {
            exec,
            period_seconds: Some(period),
            timeout_seconds: Some(seconds(hc.timeout)),
            failure_threshold: Some(startup_threshold(start, hc, period)),
            ..Probe::default()
        });
    }
}

fn failure_threshold(retries: u32) -> i32 {
    i32::try_from(retries).unwrap_or(i32::MAX).max(1)
}

/// How many startup probes may fail: as many as fit in the start period
/// plus the `retries` × `interval` Docker allows after it.
fn startup_threshold(start: Duration, hc: &HealthCheck, period: i32) -> i32 {
    let grace = i64::from(seconds(start))
        + i64::from(failure_threshold(hc.retries)) * i64::from(seconds(hc.interval));
    let period = i64::from(period.max(1));
    let n = (grace + period - 1) / period;
    i32::try_from(n).unwrap_or(i32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(interval: &str, retries: u32) -> HealthCheck {
        HealthCheck {
            test: HealthTest::Cmd(vec!["true".into()]),
            timeout: Duration::parse("5s").unwrap(),
            interval: Duration::parse(interval).unwrap(),
            retries,
            start_period: None,
            start_interval: None,
            disable: false,
        }
    }

    #[test]
    fn the_startup_probe_allows_the_start_period_and_the_retries() {
        let start = Duration::parse("30s").unwrap();
        assert_eq!(startup_threshold(start, &hc("10s", 3), 1), 60);
        assert_eq!(startup_threshold(start, &hc("10s", 3), 5), 12);
        assert_eq!(startup_threshold(start, &hc("10s", 3), 7), 9);
        assert_eq!(startup_threshold(Duration::ZERO, &hc("1ms", 0), 1), 2);
    }

    #[test]
    fn retries_are_at_least_one_failure() {
        assert_eq!(failure_threshold(0), 1);
        assert_eq!(failure_threshold(3), 3);
        assert_eq!(failure_threshold(u32::MAX), i32::MAX);
    }
}
