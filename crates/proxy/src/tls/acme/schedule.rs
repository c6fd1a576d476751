//! When to order: a certificate is renewed once a third of its lifetime is
//! left; a failed order is retried after a delay that doubles from
//! [`RETRY_BASE`] to [`RETRY_MAX`].

use std::time::{Duration, SystemTime};

/// The first retry delay after a failed order.
pub(crate) const RETRY_BASE: Duration = Duration::from_secs(60);
/// The longest retry delay (unless the base is longer).
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(3600);

/// When a certificate valid from `not_before` to `not_after` is renewed:
/// when a third of its lifetime is left.
pub(crate) fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_after.checked_sub(lifetime / 3).unwrap_or(not_before)
}

/// How long to wait after the `failures`-th failure in a row (1 = the first).
pub(crate) fn backoff(base: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let delay = base.saturating_mul(1 << doublings);
    delay.min(RETRY_MAX.max(base))
}

/// When the next order is due: `failed_at + backoff` after failures, else
/// the current certificate's renewal time, else now.
pub(crate) fn next_due(
    now: SystemTime,
    current: Option<(SystemTime, SystemTime)>,
    failures: u32,
    failed_at: SystemTime,
    base: Duration,
) -> SystemTime {
    if failures > 0 {
        return failed_at + backoff(base, failures);
    }
    current.map_or(now, |(not_before, not_after)| {
        renew_at(not_before, not_after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn renews_with_a_third_of_the_lifetime_left() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        // Let's Encrypt's 90 days: renewed after 60, 30 days before the end.
        assert_eq!(renew_at(start, start + 90 * DAY), start + 60 * DAY);
        // A 6-day certificate: after 4 days.
        assert_eq!(renew_at(start, start + 6 * DAY), start + 4 * DAY);
        // Nonsense validity (ends before it starts): renew at once.
        assert_eq!(renew_at(start + DAY, start), start);
    }

    #[test]
    fn retries_double_up_to_an_hour() {
        let base = Duration::from_secs(60);
        let delays: Vec<u64> = (1..=8).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(base, u32::MAX), RETRY_MAX);
        // A short base for tests doubles the same way.
        let short = Duration::from_millis(100);
        assert_eq!(backoff(short, 1), short);
        assert_eq!(backoff(short, 3), Duration::from_millis(400));
        // A base longer than the cap is kept.
        assert_eq!(backoff(2 * RETRY_MAX, 5), 2 * RETRY_MAX);
    }

    #[test]
    fn the_next_order_is_due_now_at_renewal_or_after_backoff() {
        let now = SystemTime::UNIX_EPOCH + 2000 * DAY;
        let base = Duration::from_secs(60);
        assert_eq!(next_due(now, None, 0, now, base), now);
        let cert = (now - 10 * DAY, now + 80 * DAY);
        assert_eq!(next_due(now, Some(cert), 0, now, base), now + 50 * DAY);
        // Failures win over the renewal time: retried with backoff.
        let failed = now - Duration::from_secs(30);
        assert_eq!(
            next_due(now, Some(cert), 2, failed, base),
            failed + Duration::from_secs(120)
        );
    }
}
