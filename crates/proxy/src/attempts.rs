//! Which replicas a request was tried on, which requests may be tried
//! again after bytes were sent (RFC 9110 9.2.2), and how long all attempts
//! may take together.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;

/// Most replicas one request is tried on.
pub(crate) const MAX_ATTEMPTS: usize = 8;

/// Most time a retry after a response timeout adds to the worst case.
pub(crate) const RETRY_EXTRA_MAX: Duration = Duration::from_secs(10);

/// How long all attempts of one request may take together, from its start.
///
/// Each attempt waits at most the route's response `timeout` for a head,
/// and never past this budget. Like nginx's `proxy_next_upstream error
/// timeout`, a request whose replica timed out is tried once more on
/// another (idempotent methods with a body that can be sent again); unlike
/// nginx's default `proxy_next_upstream_timeout 0`, which lets every
/// replica take the whole timeout, the budget is `timeout + min(timeout,
/// RETRY_EXTRA_MAX)`: the retry gets what remains of it, so the worst case
/// is 600 ms for a 300 ms timeout and 70 s for the default 60 s, whatever
/// the number of replicas.
pub(crate) fn budget(timeout: Duration) -> Duration {
    timeout.saturating_add(timeout.min(RETRY_EXTRA_MAX))
}

/// The replicas one request was sent to, without allocating.
#[derive(Debug)]
pub(crate) struct Tried {
    addrs: [SocketAddr; MAX_ATTEMPTS],
    pub(crate) len: usize,
}

impl Default for Tried {
    fn default() -> Self {
        Tried {
            addrs: [SocketAddr::from(([0, 0, 0, 0], 0)); MAX_ATTEMPTS],
            len: 0,
        }
    }
}

impl Tried {
    /// Records an attempt.
    pub(crate) fn push(&mut self, addr: SocketAddr) {
        if let Some(slot) = self.addrs.get_mut(self.len) {
            *slot = addr;
            self.len += 1;
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.len >= MAX_ATTEMPTS
    }

    pub(crate) fn as_slice(&self) -> &[SocketAddr] {
        &self.addrs[..self.len]
    }
}

/// Methods a client may repeat without changing the outcome (RFC 9110 9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_bounded_and_only_safe_methods_repeat() {
        let mut tried = Tried::default();
        for port in 0..10 {
            tried.push(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        assert!(tried.full());
        assert_eq!(tried.as_slice().len(), MAX_ATTEMPTS);
        assert!(is_idempotent(&Method::PUT));
        assert!(is_idempotent(&Method::GET));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }

    #[test]
    fn a_retry_after_a_timeout_adds_at_most_the_timeout_or_ten_seconds() {
        let ms = Duration::from_millis;
        assert_eq!(budget(ms(300)), ms(600));
        assert_eq!(budget(Duration::from_secs(60)), Duration::from_secs(70));
        assert_eq!(budget(Duration::MAX), Duration::MAX);
    }
}
