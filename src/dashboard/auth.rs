//! Who may open the dashboard: the token (from its file, made when there is
//! none), one-time login codes that `berth dashboard` asks for, HTTP basic
//! credentials, and the sessions a login opens (an HttpOnly,
//! SameSite=Strict cookie, each with its CSRF token for actions).
//! Secrets are compared in constant time.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use berth_compose::xberth::{DashboardAuth, DashboardSettings};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "berth_session";
/// How long a login code from `berth dashboard` stays valid.
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// How long a session lasts without being used.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug)]
enum Secret {
    Token(String),
    Basic { user: String, password: String },
}

#[derive(Debug)]
struct Session {
    csrf: String,
    used: Instant,
}

/// The dashboard's credentials and open sessions.
#[derive(Debug)]
pub struct Access {
    secret: Secret,
    sessions: Mutex<HashMap<String, Session>>,
    codes: Mutex<HashMap<String, Instant>>,
}

/// Who a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `Authorization: Bearer` with the token: a script; no CSRF.
    Bearer,
    /// A session (the cookie), with its id.
    Session(String),
}

/// `n` random bytes, hex.
pub fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The token in `path`, written (mode 0600) when the file does not exist.
fn token(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            anyhow::ensure!(
                token.len() >= 16,
                "the dashboard token in {} is {} characters long; write one of at least 16 (or delete the file and berth writes one)",
                path.display(),
                token.len()
            );
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_hex(32)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let mut file = private_file(path).with_context(|| {
                format!("cannot write the dashboard token to {}", path.display())
            })?;
            writeln!(file, "{token}").with_context(|| {
                format!("cannot write the dashboard token to {}", path.display())
            })?;
            Ok(token)
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot read the dashboard token {}", path.display()))
        }
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

impl Access {
    /// Reads (or makes) the credentials `settings` name.
    ///
    /// # Errors
    /// A token or password file that cannot be read or written, or is too
    /// short to be a secret.
    pub fn load(settings: &DashboardSettings) -> anyhow::Result<Access> {
        let secret = match &settings.auth {
            DashboardAuth::Generated { token_file } | DashboardAuth::Token { token_file } => {
                Secret::Token(token(token_file)?)
            }
            DashboardAuth::Basic {
                user,
                password_file,
            } => {
                let password = std::fs::read_to_string(password_file)
                    .with_context(|| {
                        format!(
                            "cannot read the dashboard password file {}",
                            password_file.display()
                        )
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                anyhow::ensure!(
                    !password.is_empty(),
                    "the dashboard password file {} is empty",
                    password_file.display()
                );
                Secret::Basic {
                    user: user.clone(),
                    password,
                }
            }
        };
        Ok(Access {
            secret,
            sessions: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
        })
    }

    /// A login code valid once, for ten minutes.
    ///
    /// # Errors
    /// The system has no randomness to give.
    pub fn login_code(&self) -> anyhow::Result<String> {
        let code = random_hex(24)?;
        let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
        codes.retain(|_, expires| *expires > Instant::now());
        codes.insert(code.clone(), Instant::now() + CODE_LIFETIME);
        Ok(code)
    }

    /// Whether `?token=` lets someone in: the token itself, or an unused,
    /// unexpired login code (which is then spent).
    pub fn accepts_login(&self, given: &str) -> bool {
        if let Secret::Token(token) = &self.secret
            && equal(token, given)
        {
            return true;
        }
        let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let found = codes
            .iter()
            .find(|(code, expires)| equal(code, given) && **expires > now)
            .map(|(code, _)| code.clone());
        found.is_some_and(|code| codes.remove(&code).is_some())
    }

    /// Opens a session; its id (the cookie's value).
    ///
    /// # Errors
    /// No randomness.
    pub fn open_session(&self) -> anyhow::Result<String> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.used.elapsed() < SESSION_IDLE);
        sessions.insert(
            id.clone(),
            Session {
                csrf,
                used: Instant::now(),
            },
        );
        Ok(id)
    }

    /// The session's CSRF token, when the session is open.
    pub fn csrf(&self, session: &str) -> Option<String> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.get(session).map(|s| s.csrf.clone())
    }

    /// Whether `given` is `session`'s CSRF token.
    pub fn csrf_matches(&self, session: &str, given: &str) -> bool {
        self.csrf(session).is_some_and(|c| equal(&c, given))
    }

    /// Who sends these headers: a bearer token, an open session's cookie,
    /// or basic credentials (which open a session: `Some(new id)` then).
    pub fn identify(&self, headers: &http::HeaderMap) -> Option<(Principal, bool)> {
        let authorization = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let (Some(given), Secret::Token(token)) =
            (authorization.strip_prefix("Bearer "), &self.secret)
            && equal(token, given.trim())
        {
            return Some((Principal::Bearer, false));
        }
        if let Some(id) = cookie(headers, COOKIE) {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = sessions
                .get_mut(&id)
                .filter(|s| s.used.elapsed() < SESSION_IDLE)
            {
                s.used = Instant::now();
                return Some((Principal::Session(id), false));
            }
        }
        if let (Some(given), Secret::Basic { user, password }) =
            (authorization.strip_prefix("Basic "), &self.secret)
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(given.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())?;
            let (u, p) = decoded.split_once(':')?;
            // Both compared, whatever the first says.
            let user_ok = equal(user, u);
            let password_ok = equal(password, p);
            if user_ok && password_ok {
                let id = self.open_session().ok()?;
                return Some((Principal::Session(id), true));
            }
        }
        None
    }

    /// What a browser is asked for when it is not let in.
    pub fn challenge(&self) -> &'static str {
        match self.secret {
            Secret::Token(_) => "Bearer realm=\"berth dashboard\"",
            Secret::Basic { .. } => "Basic realm=\"berth dashboard\", charset=\"UTF-8\"",
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(dir: &Path) -> Access {
        Access::load(&DashboardSettings {
            listen: Some("127.0.0.1:0".into()),
            path: None,
            auth: DashboardAuth::Generated {
                token_file: dir.join("t"),
            },
            read_only: false,
        })
        .unwrap()
    }

    #[test]
    fn a_token_is_made_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = access(dir.path());
        let written = std::fs::read_to_string(dir.path().join("t")).unwrap();
        let token = written.trim();
        assert_eq!(token.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("t"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(a.accepts_login(token));
        assert!(!a.accepts_login("nope"));
        // Loaded again: the same token.
        assert!(access(dir.path()).accepts_login(token));
    }

    #[test]
    fn a_login_code_works_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = access(dir.path());
        let code = a.login_code().unwrap();
        assert!(a.accepts_login(&code));
        assert!(!a.accepts_login(&code));
    }

    #[test]
    fn sessions_bearers_and_basic_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let a = access(dir.path());
        let token = std::fs::read_to_string(dir.path().join("t")).unwrap();
        let mut h = http::HeaderMap::new();
        assert_eq!(a.identify(&h), None);
        h.insert(
            "authorization",
            format!("Bearer {}", token.trim()).parse().unwrap(),
        );
        assert_eq!(a.identify(&h), Some((Principal::Bearer, false)));
        let id = a.open_session().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("cookie", format!("a=b; {COOKIE}={id}").parse().unwrap());
        assert_eq!(
            a.identify(&h),
            Some((Principal::Session(id.clone()), false))
        );
        let csrf = a.csrf(&id).unwrap();
        assert!(a.csrf_matches(&id, &csrf));
        assert!(!a.csrf_matches(&id, "x"));

        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let b = Access::load(&DashboardSettings {
            listen: None,
            path: Some("/_berth".into()),
            auth: DashboardAuth::Basic {
                user: "admin".into(),
                password_file: dir.path().join("pw"),
            },
            read_only: true,
        })
        .unwrap();
        let basic = |s: &str| {
            let mut h = http::HeaderMap::new();
            let v = base64::engine::general_purpose::STANDARD.encode(s);
            h.insert("authorization", format!("Basic {v}").parse().unwrap());
            h
        };
        assert!(matches!(
            b.identify(&basic("admin:s3cret")),
            Some((Principal::Session(_), true))
        ));
        assert_eq!(b.identify(&basic("admin:wrong")), None);
        assert_eq!(b.identify(&basic("root:s3cret")), None);
    }
}
