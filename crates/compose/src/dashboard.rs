//! The dashboard settings, `x-berth.dashboard`: where the browser dashboard
//! is served (its own listener, a path on the edge proxy, or both), who may
//! open it, and whether it may act. Checked and defaulted by
//! `normalize::dashboard`; `berth up` serves it and `berth dashboard`
//! prints its login link.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `x-berth.dashboard`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DashboardSettings {
    /// Its own listener (`127.0.0.1:8081`), normalized.
    pub listen: Option<String>,
    /// Mounted on the edge proxy under this path (`/_berth`, no trailing
    /// slash).
    pub path: Option<String>,
    pub auth: DashboardAuth,
    /// Shows, never acts: restart, stop, start and scale are refused.
    pub read_only: bool,
}

/// Who may open the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DashboardAuth {
    /// No `auth` written (allowed on loopback only): a token berth makes
    /// and keeps in `<state_dir>/dashboard.token` (mode 0600).
    Generated { token_file: PathBuf },
    /// `auth.token_file`: the token is the file's content, trimmed (berth
    /// writes a new one, mode 0600, when the file does not exist).
    Token { token_file: PathBuf },
    /// `auth.basic`: HTTP basic authentication.
    Basic {
        user: String,
        password_file: PathBuf,
    },
}

impl DashboardAuth {
    /// The file holding the token, for the token kinds.
    pub fn token_file(&self) -> Option<&std::path::Path> {
        match self {
            DashboardAuth::Generated { token_file } | DashboardAuth::Token { token_file } => {
                Some(token_file)
            }
            DashboardAuth::Basic { .. } => None,
        }
    }
}

pub(crate) mod raw {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    pub struct Dashboard {
        pub listen: Option<String>,
        pub path: Option<String>,
        pub auth: Option<Auth>,
        pub read_only: bool,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    pub struct Auth {
        pub token_file: Option<String>,
        pub basic: Option<Basic>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Basic {
        pub user: String,
        pub password_file: String,
    }
}
