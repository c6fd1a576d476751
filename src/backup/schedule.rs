//! `x-berth.backup.schedule`: when backups are made while `berth up`
//! runs. The cron expression is matched in a time zone (local time for
//! berth) and the loop asks a [`Clock`] for the time and for waiting, so
//! tests run days of schedule without waiting for them.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio_util::sync::CancellationToken;

/// A parsed schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: TimeZone,
}

impl Schedule {
    /// # Errors
    /// The text is not a cron expression (loading the file checked it).
    pub fn parse(text: &str, tz: TimeZone) -> Result<Schedule, String> {
        let cron = text.parse::<croner::Cron>().map_err(|e| e.to_string())?;
        Ok(Schedule { cron, tz })
    }

    /// The first match strictly after `t`; `None` when there is none.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let zoned = t.to_zoned(self.tz.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// Where the time comes from.
pub trait Clock {
    fn now(&self) -> Timestamp;
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;
}

/// The machine's clock and tokio's timer.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

/// Runs `job` at each match of `schedule` until `stop`. A match missed
/// while a job still ran is skipped, not caught up.
pub async fn run<C: Clock, F: Future<Output = ()>>(
    schedule: &Schedule,
    clock: &C,
    stop: &CancellationToken,
    mut job: impl FnMut(Timestamp) -> F,
) {
    let mut after = clock.now();
    while let Some(at) = schedule.next_after(after) {
        loop {
            let now = clock.now();
            if now >= at {
                break;
            }
            let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
            tokio::select! {
                () = stop.cancelled() => return,
                () = clock.sleep(wait) => {}
            }
        }
        if stop.is_cancelled() {
            return;
        }
        job(at).await;
        after = clock.now().max(at);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A clock whose sleeps return at once, having moved the time on.
    #[derive(Clone)]
    struct FakeClock(Arc<Mutex<Timestamp>>);

    impl Clock for FakeClock {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap()
        }

        fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
            let mut now = self.0.lock().unwrap();
            *now = now
                .checked_add(jiff::SignedDuration::try_from(d).unwrap())
                .unwrap();
            std::future::ready(())
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// The times `job` ran, from `start`, until it ran `n` times.
    async fn fired(
        cron: &str,
        tz: TimeZone,
        start: &str,
        n: usize,
        job_takes: Duration,
    ) -> Vec<String> {
        let schedule = Schedule::parse(cron, tz).unwrap();
        let clock = FakeClock(Arc::new(Mutex::new(at(start))));
        let stop = CancellationToken::new();
        let times = Arc::new(Mutex::new(Vec::new()));
        run(&schedule, &clock, &stop, |t| {
            let mut seen = times.lock().unwrap();
            seen.push(t.to_string());
            if seen.len() == n {
                stop.cancel();
            }
            clock.sleep(job_takes)
        })
        .await;
        times.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_daily_schedule_fires_once_a_day_at_its_local_time() {
        let utc = fired(
            "0 3 * * *",
            TimeZone::UTC,
            "2026-12-01T12:00:00Z",
            3,
            Duration::ZERO,
        )
        .await;
        assert_eq!(
            utc,
            [
                "2026-12-02T03:00:00Z",
                "2026-12-03T03:00:00Z",
                "2026-12-04T03:00:00Z"
            ]
        );
        // 03:00 at UTC+2 is 01:00 UTC.
        let plus_two = TimeZone::fixed(jiff::tz::offset(2));
        let local = fired(
            "0 3 * * *",
            plus_two,
            "2026-12-01T12:00:00Z",
            2,
            Duration::ZERO,
        )
        .await;
        assert_eq!(local, ["2026-12-02T01:00:00Z", "2026-12-03T01:00:00Z"]);
    }

    #[tokio::test]
    async fn a_match_missed_while_a_backup_ran_is_skipped() {
        // Every 10 minutes, each backup taking 25: every third slot.
        let runs = fired(
            "*/10 * * * *",
            TimeZone::UTC,
            "2026-12-01T00:01:00Z",
            3,
            Duration::from_secs(25 * 60),
        )
        .await;
        assert_eq!(
            runs,
            [
                "2026-12-01T00:10:00Z",
                "2026-12-01T00:40:00Z",
                "2026-12-01T01:10:00Z"
            ]
        );
    }

    #[tokio::test]
    async fn stopping_ends_the_wait() {
        let schedule = Schedule::parse("0 3 * * *", TimeZone::UTC).unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        let mut ran = false;
        run(&schedule, &SystemClock, &stop, |_| {
            ran = true;
            std::future::ready(())
        })
        .await;
        assert!(!ran);
    }

    #[test]
    fn seconds_are_optional() {
        let s = Schedule::parse("*/5 * * * * *", TimeZone::UTC).unwrap();
        assert_eq!(
            s.next_after(at("2026-12-01T00:00:01Z")),
            Some(at("2026-12-01T00:00:05Z"))
        );
    }
}
