//! What `berth logs` selects: services, `--since`, `--tail`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which records [`read_records`](super::read_records) returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only these services; empty means all.
    pub services: Vec<String>,
    /// Only records at or after this instant (`--since`).
    pub since: Option<SystemTime>,
    /// Only the last N records of each replica (`--tail N`, per container
    /// like `docker compose logs`); `None` means all.
    pub tail: Option<usize>,
}

impl LogFilter {
    /// Whether records of `service` are wanted.
    pub fn wants_service(&self, service: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == service)
    }
}

/// A `--since` value that is neither a timestamp nor a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid --since value {0:?}: use a timestamp (2026-11-22T10:00:00Z, 2026-11-22), \
     unix seconds (1795341600) or a duration ago (10m, 1h30m)"
)]
pub struct SinceError(pub String);

/// Parses `--since` like `docker compose logs`: an RFC 3339 timestamp (the
/// `T`, fraction and `Z` optional; UTC), a date, unix seconds with an
/// optional fraction, or a duration before `now` (`42m`, `1h30m`).
///
/// # Errors
///
/// [`SinceError`] when the text is none of these.
pub fn parse_since(text: &str, now: SystemTime) -> Result<SystemTime, SinceError> {
    let text = text.trim();
    let err = || SinceError(text.to_owned());
    if let Ok(ts) = humantime::parse_rfc3339_weak(text) {
        return Ok(ts);
    }
    if text.len() == 10
        && let Ok(ts) = humantime::parse_rfc3339(&format!("{text}T00:00:00Z"))
    {
        return Ok(ts);
    }
    if let Some(ts) = unix_seconds(text) {
        return Ok(ts);
    }
    let ago = humantime::parse_duration(text).map_err(|_| err())?;
    Ok(now.checked_sub(ago).unwrap_or(UNIX_EPOCH).max(UNIX_EPOCH))
}

/// `1795341600` or `1795341600.5`.
fn unix_seconds(text: &str) -> Option<SystemTime> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || !digits(frac) || frac.len() > 9 {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    UNIX_EPOCH.checked_add(Duration::new(secs.parse().ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn accepts_docker_forms() {
        let now = at(1_795_341_600, 0);
        let cases = [
            ("2026-11-22T10:00:00Z", at(1_795_341_600, 0)),
            ("2026-11-22T10:00:00.25Z", at(1_795_341_600, 250_000_000)),
            ("2026-11-22 10:00:00", at(1_795_341_600, 0)),
            ("2026-11-22", at(1_795_305_600, 0)),
            ("1795341600", at(1_795_341_600, 0)),
            ("1795341600.5", at(1_795_341_600, 500_000_000)),
            ("10m", at(1_795_341_000, 0)),
            ("1h30m", at(1_795_336_200, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_since(text, now), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_nonsense_with_a_helpful_message() {
        let err = parse_since("yesterday", SystemTime::now()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid --since value \"yesterday\": use")
        );
        assert!(parse_since("1.2.3", SystemTime::now()).is_err());
        assert!(parse_since("", SystemTime::now()).is_err());
    }

    #[test]
    fn a_duration_longer_than_the_epoch_means_everything() {
        assert_eq!(parse_since("100000w", at(10, 0)), Ok(UNIX_EPOCH));
    }

    #[test]
    fn service_filter() {
        let all = LogFilter::default();
        assert!(all.wants_service("api"));
        let some = LogFilter {
            services: vec!["db".into()],
            ..LogFilter::default()
        };
        assert!(some.wants_service("db") && !some.wants_service("api"));
    }
}
