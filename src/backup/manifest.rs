//! The manifest: the archive's last member, `manifest.json`, saying what it
//! holds and the SHA-256 of every file in it. Last, because the checksums
//! are known only once everything is written; so an archive cut short has
//! none, and is refused as incomplete.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The name of the manifest member.
pub const MANIFEST: &str = "manifest.json";

/// What `format` says for this layout.
pub const FORMAT: &str = "berth-backup/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    pub project: String,
    /// The berth that wrote it.
    pub berth_version: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// The services asked for (every service when none was named).
    pub services: Vec<String>,
    /// The directories archived: named volumes, and bind mounts with `--binds`.
    pub trees: Vec<Tree>,
    /// Services' `dump` outputs.
    pub dumps: Vec<DumpEntry>,
    /// Every member before the manifest, by its path in the archive.
    pub members: BTreeMap<String, Member>,
}

/// One directory archived under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub kind: TreeKind,
    /// The volume's name (`<project>_<key>` unless it sets `name:`), or a
    /// bind mount's source relative to the project directory.
    pub name: String,
    /// The volume's key in the file, or the bind source as written: what
    /// restore finds the directory by in the project as it is now.
    pub key: String,
    /// Its members' path prefix: `volumes/<name>` or `binds/<n>`.
    pub prefix: String,
    /// The services that mount it.
    pub services: Vec<String>,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeKind {
    Volume,
    Bind,
}

/// A service's dump: member `dumps/<service>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpEntry {
    pub service: String,
    pub member: String,
    pub bytes: u64,
}

/// One member: what it is, and for a file its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub kind: MemberKind,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    File,
    Dir,
    Symlink,
}

impl Manifest {
    /// Bytes of files and dumps held.
    pub fn bytes(&self) -> u64 {
        self.trees.iter().map(|t| t.bytes).sum::<u64>()
            + self.dumps.iter().map(|d| d.bytes).sum::<u64>()
    }

    /// What it holds, in a few words: `volumes app_data (12 files, 3.1 MiB); dump db`.
    pub fn summary(&self) -> Summary {
        Summary {
            project: self.project.clone(),
            created: self.created.clone(),
            services: self.services.clone(),
            volumes: self.trees.iter().map(|t| t.name.clone()).collect(),
            dumps: self.dumps.iter().map(|d| d.service.clone()).collect(),
            bytes: self.bytes(),
            encrypted: false,
        }
    }
}

/// What `berth backups` shows of an archive without opening it: kept
/// beside it as `<archive>.json` (no file names, no checksums, so an
/// encrypted archive's sidecar tells little).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub project: String,
    pub created: String,
    pub services: Vec<String>,
    pub volumes: Vec<String>,
    pub dumps: Vec<String>,
    /// Bytes of data held (before compression).
    pub bytes: u64,
    pub encrypted: bool,
}
