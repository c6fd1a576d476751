//! Which replicas a request was tried on, and which requests may be tried
//! again after bytes were sent (RFC 9110 9.2.2).

use std::net::SocketAddr;

use http::Method;

/// Most replicas one request is tried on.
pub(crate) const MAX_ATTEMPTS: usize = 8;

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
}
