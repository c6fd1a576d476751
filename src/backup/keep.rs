//! Retention: which archives `keep: {last, daily, weekly}` keeps. An
//! archive is kept when any rule keeps it (restic's `forget`): the newest
//! `last`; the newest of each of the `daily` most recent days that have an
//! archive; the newest of each of the `weekly` most recent ISO weeks.
//! Days and weeks are in the given time zone (local time for berth).

use berth_compose::xberth::Keep;
use jiff::tz::TimeZone;

/// For archives made at `times` (Unix seconds; `None`: unknown, always
/// kept), whether each is kept.
pub fn kept(times: &[Option<i64>], rules: &Keep, tz: &TimeZone) -> Vec<bool> {
    if rules.keeps_everything() {
        return vec![true; times.len()];
    }
    let mut keep: Vec<bool> = times.iter().map(Option::is_none).collect();
    let mut order: Vec<(i64, usize)> = times
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (t, i)))
        .collect();
    // Newest first.
    order.sort_by(|a, b| b.cmp(a));
    for (_, i) in order.iter().take(rules.last.unwrap_or(0) as usize) {
        keep[*i] = true;
    }
    let day = |t: i64| bucket(t, tz, |d| (i32::from(d.year()), i32::from(d.day_of_year())));
    let week = |t: i64| {
        bucket(t, tz, |d| {
            let w = d.iso_week_date();
            (i32::from(w.year()), i32::from(w.week()))
        })
    };
    newest_per(&order, rules.daily.unwrap_or(0), day, &mut keep);
    newest_per(&order, rules.weekly.unwrap_or(0), week, &mut keep);
    keep
}

fn bucket(t: i64, tz: &TimeZone, key: impl Fn(jiff::civil::Date) -> (i32, i32)) -> (i32, i32) {
    jiff::Timestamp::from_second(t).map_or((i32::MIN, 0), |ts| key(ts.to_zoned(tz.clone()).date()))
}

/// Keeps the newest archive of each of the `n` most recent buckets.
fn newest_per(order: &[(i64, usize)], n: u32, key: impl Fn(i64) -> (i32, i32), keep: &mut [bool]) {
    let mut seen: Vec<(i32, i32)> = Vec::new();
    for (t, i) in order {
        if seen.len() >= n as usize {
            break;
        }
        let k = key(*t);
        if !seen.contains(&k) {
            seen.push(k);
            keep[*i] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// Monday 2026-11-30 00:00 UTC.
    const MONDAY: i64 = 1_795_996_800;

    fn rules(last: Option<u32>, daily: Option<u32>, weekly: Option<u32>) -> Keep {
        Keep {
            last,
            daily,
            weekly,
        }
    }

    #[test]
    fn nothing_set_keeps_everything() {
        let t = [Some(1), Some(2)];
        assert_eq!(kept(&t, &Keep::default(), &TimeZone::UTC), [true, true]);
    }

    #[test]
    fn last_keeps_the_newest() {
        let t = [Some(30), Some(10), Some(20), None];
        assert_eq!(
            kept(&t, &rules(Some(2), None, None), &TimeZone::UTC),
            [true, false, true, true]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_recent_day() {
        // Two a day (03:00 and 15:00) for five days, oldest first.
        let t: Vec<Option<i64>> = (0..5)
            .flat_map(|d| [MONDAY + d * DAY + 3 * 3600, MONDAY + d * DAY + 15 * 3600])
            .map(Some)
            .collect();
        let k = kept(&t, &rules(None, Some(3), None), &TimeZone::UTC);
        // Days 2, 3 and 4: their 15:00 archive.
        assert_eq!(
            k,
            [
                false, false, false, false, false, true, false, true, false, true
            ]
        );
    }

    #[test]
    fn days_are_local_days() {
        // 23:30 UTC and 00:30 UTC the next day are one day at UTC-2.
        let t = [Some(MONDAY - 1800), Some(MONDAY + 1800)];
        let minus_two = TimeZone::fixed(jiff::tz::offset(-2));
        assert_eq!(
            kept(&t, &rules(None, Some(2), None), &minus_two),
            [false, true]
        );
        assert_eq!(
            kept(&t, &rules(None, Some(2), None), &TimeZone::UTC),
            [true, true]
        );
    }

    #[test]
    fn weekly_and_last_add_up() {
        // One a day for 21 days from a Monday, oldest first.
        let t: Vec<Option<i64>> = (0..21).map(|d| Some(MONDAY + d * DAY + 3600)).collect();
        let k = kept(&t, &rules(Some(1), None, Some(3)), &TimeZone::UTC);
        let kept_days: Vec<usize> = k
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| i)
            .collect();
        // Each week's Sunday (days 6, 13, 20); the newest is also `last`.
        assert_eq!(kept_days, [6, 13, 20]);
        let k = kept(&t, &rules(Some(2), None, Some(1)), &TimeZone::UTC);
        let kept_days: Vec<usize> = k
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(kept_days, [19, 20]);
    }
}
