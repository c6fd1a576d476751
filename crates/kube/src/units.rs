//! Compose durations and sizes to what Kubernetes counts in: whole seconds,
//! quantities.

use berth_compose::Duration;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Whole seconds for a probe or a deadline: rounded up, at least 1 (a
/// probe cannot run more often than once a second).
pub fn seconds(d: Duration) -> i32 {
    seconds_or_zero(d).max(1)
}

/// Whole seconds, rounded up; 0 stays 0 (a grace period may be 0).
pub fn seconds_or_zero(d: Duration) -> i32 {
    let d = d.as_std();
    let whole = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i32::try_from(whole).unwrap_or(i32::MAX)
}

/// A byte count as a quantity, in the largest binary unit that divides it
/// (`536870912` -> `512Mi`).
pub fn bytes(n: u64) -> Quantity {
    let units = [
        (60, "Ei"),
        (50, "Pi"),
        (40, "Ti"),
        (30, "Gi"),
        (20, "Mi"),
        (10, "Ki"),
    ];
    for (shift, suffix) in units {
        let unit = 1u64 << shift;
        if n >= unit && n.is_multiple_of(unit) {
            return Quantity(format!("{}{suffix}", n / unit));
        }
    }
    Quantity(n.to_string())
}

/// A CPU count (`0.5`, `2`) as a quantity in whole millicores, rounded up
/// (`500m`, `2`); `None` for zero, negative or not-a-number counts.
pub fn cpus(count: f64) -> Option<Quantity> {
    if !count.is_finite() || count <= 0.0 {
        return None;
    }
    let milli = (count * 1000.0).ceil();
    if milli > 9.0e15 {
        return None;
    }
    // Exact: `milli` is a whole number well within an i64.
    #[allow(clippy::cast_possible_truncation)]
    let milli = milli as i64;
    Some(Quantity(if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }))
}

/// A size in the units nginx reads (`10m`, `512k`, bytes).
pub fn nginx_size(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}m", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{}k", n >> 10)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Duration {
        Duration::parse(text).unwrap()
    }

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(seconds(d("30s")), 30);
        assert_eq!(seconds(d("1m30s")), 90);
        assert_eq!(seconds(d("1500ms")), 2);
        assert_eq!(seconds(d("10ms")), 1);
        assert_eq!(seconds(d("0s")), 1);
        assert_eq!(seconds_or_zero(d("0s")), 0);
        assert_eq!(seconds_or_zero(d("1ns")), 1);
        assert_eq!(seconds(d("1h")), 3600);
        assert_eq!(
            seconds(Duration::from_std(std::time::Duration::MAX)),
            i32::MAX
        );
    }

    #[test]
    fn sizes_use_the_largest_binary_unit() {
        assert_eq!(bytes(536_870_912).0, "512Mi");
        assert_eq!(bytes(1 << 30).0, "1Gi");
        assert_eq!(bytes(1536 << 20).0, "1536Mi");
        assert_eq!(bytes(1000).0, "1000");
        assert_eq!(bytes(2048).0, "2Ki");
        assert_eq!(bytes(0).0, "0");
        assert_eq!(bytes(u64::MAX).0, u64::MAX.to_string());
    }

    #[test]
    fn cpus_become_millicores() {
        assert_eq!(cpus(0.5).unwrap().0, "500m");
        assert_eq!(cpus(1.0).unwrap().0, "1");
        assert_eq!(cpus(2.25).unwrap().0, "2250m");
        assert_eq!(cpus(0.0001).unwrap().0, "1m");
        assert_eq!(cpus(0.0), None);
        assert_eq!(cpus(-1.0), None);
        assert_eq!(cpus(f64::NAN), None);
        assert_eq!(cpus(f64::INFINITY), None);
    }

    #[test]
    fn nginx_sizes() {
        assert_eq!(nginx_size(10 << 20), "10m");
        assert_eq!(nginx_size(512 << 10), "512k");
        assert_eq!(nginx_size(1000), "1000");
    }
}
