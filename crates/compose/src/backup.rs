//! The backup settings: `x-berth.backup` at the top level (where archives
//! go, how many are kept, when they are made, who can read them) and on a
//! service (how its data is made consistent: a dump, a stop, or hooks; what
//! to leave out). Checked and defaulted by `normalize::backup`; `berth
//! backup`, `restore` and `backups` read them as they are.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `x-berth.backup`, every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSettings {
    /// Where archives are written and listed from; absolute. Default
    /// `<state_dir>/backups`.
    pub dir: PathBuf,
    /// Which archives pruning keeps; all of them when nothing is set.
    pub keep: Keep,
    /// A cron expression (5 fields, or 6 with seconds first) in local
    /// time: `berth up` makes a backup at each match while it runs.
    pub schedule: Option<String>,
    /// age recipients (`age1…`): when set, archives are encrypted to them
    /// and unreadable without one of their identities.
    pub encrypt_to: Vec<String>,
}

impl BackupSettings {
    /// The defaults for a project whose state directory is `state_dir`.
    pub fn defaults(state_dir: &std::path::Path) -> Self {
        BackupSettings {
            dir: state_dir.join("backups"),
            keep: Keep::default(),
            schedule: None,
            encrypt_to: Vec::new(),
        }
    }
}

/// `keep: {last, daily, weekly}`: an archive survives pruning when any
/// rule keeps it (the rules of restic's and borg's `forget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Keep {
    /// The newest N archives.
    pub last: Option<u32>,
    /// The newest archive of each of the last N days that have one.
    pub daily: Option<u32>,
    /// The newest archive of each of the last N ISO weeks that have one.
    pub weekly: Option<u32>,
}

impl Keep {
    /// No rule set: nothing is ever pruned.
    pub fn keeps_everything(&self) -> bool {
        self.last.is_none() && self.daily.is_none() && self.weekly.is_none()
    }
}

/// `x-berth.backup` on a service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ServiceBackup {
    /// A command whose output is the service's data, and the one that
    /// takes it back.
    pub dump: Option<Dump>,
    /// Stop the service while its volumes are archived, start it after.
    pub stop: bool,
    /// Commands run in the service before and after its volumes are archived.
    pub hooks: Hooks,
    /// Globs of paths (relative to each volume) left out of the archive.
    pub exclude: Vec<String>,
}

/// `dump: {command, restore}`: each a string run through `sh -c` with the
/// service's environment, as `berth exec` runs commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dump {
    /// Writes the dump on its standard output.
    pub command: String,
    /// Reads the dump on its standard input.
    pub restore: String,
}

/// `hooks: {pre, post}`: strings run through `sh -c` in the service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Hooks {
    pub pre: Option<String>,
    pub post: Option<String>,
}

/// Whether a text is shaped like an age X25519 recipient: `age1` and 58
/// more characters of the bech32 alphabet (the checksum is checked when
/// an archive is encrypted).
pub fn looks_like_age_recipient(text: &str) -> bool {
    const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    text.len() == 62 && text.starts_with("age1") && text[4..].chars().all(|c| BECH32.contains(c))
}

/// An `exclude` pattern compiled as the archiver matches it: `*` and `?`
/// stay within a path segment, `**` crosses them; a pattern without `/`
/// matches a name at any depth.
///
/// # Errors
/// Why the pattern is not a glob.
pub fn exclude_glob(pattern: &str) -> Result<globset::Glob, String> {
    if pattern.trim().is_empty() {
        return Err("it is empty".into());
    }
    let pattern = pattern.trim_start_matches("./");
    let anchored = if pattern.contains('/') {
        pattern.trim_start_matches('/').to_string()
    } else {
        format!("**/{pattern}")
    };
    globset::GlobBuilder::new(&anchored)
        .literal_separator(true)
        .build()
        .map_err(|e| e.kind().to_string())
}

/// Raw shapes as written, bound from the tree after schema validation.
pub(crate) mod raw {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Project {
        pub dir: Option<String>,
        pub keep: Keep,
        pub schedule: Option<String>,
        pub encrypt_to: Vec<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Service {
        pub dump: Option<Dump>,
        pub stop: bool,
        pub hooks: HooksRaw,
        pub exclude: Vec<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Dump {
        /// Missing: the schema says so.
        pub command: Option<String>,
        pub restore: Option<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct HooksRaw {
        pub pre: Option<String>,
        pub post: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_recipients_are_recognised_by_shape() {
        let good = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        assert!(looks_like_age_recipient(good));
        assert!(!looks_like_age_recipient(&good[..61]));
        assert!(!looks_like_age_recipient(&good.replace("age1", "agf1")));
        assert!(!looks_like_age_recipient(&good.to_uppercase()));
        assert!(!looks_like_age_recipient("age1"));
        assert!(!looks_like_age_recipient("ssh-ed25519 AAAA"));
    }
}
