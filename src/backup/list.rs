//! The archives in a backup directory, with their sidecar summaries.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::manifest::Summary;

/// `<project>-<UTC time>.tar.zst`, `.age` appended when encrypted.
pub fn archive_name(project: &str, created: &str, encrypted: bool) -> String {
    let stamp: String = created
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let age = if encrypted { ".age" } else { "" };
    format!("{project}-{stamp}.tar.zst{age}")
}

/// The sidecar of an archive.
pub fn sidecar(archive: &Path) -> PathBuf {
    let mut name = archive
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".json");
    archive.with_file_name(name)
}

/// Writes the sidecar.
///
/// # Errors
/// It cannot be written.
pub fn write_sidecar(archive: &Path, summary: &Summary) -> Result<()> {
    let path = sidecar(archive);
    let json = serde_json::to_vec_pretty(summary).context("cannot write the summary")?;
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))
}

/// One archive found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub path: PathBuf,
    /// Size on disk.
    pub size: u64,
    /// From its sidecar, when it has one that parses.
    pub summary: Option<Summary>,
}

impl Listed {
    /// When it was made: the sidecar's time, else the file's.
    pub fn created(&self) -> Option<std::time::SystemTime> {
        self.summary
            .as_ref()
            .and_then(|s| humantime::parse_rfc3339(&s.created).ok())
            .or_else(|| {
                std::fs::metadata(&self.path)
                    .and_then(|m| m.modified())
                    .ok()
            })
    }
}

/// The archives of `project` in `dir` (files `<project>-*.tar.zst[.age]`),
/// oldest first; none when the directory does not exist.
///
/// # Errors
/// The directory exists but cannot be read.
pub fn list(dir: &Path, project: &str) -> Result<Vec<Listed>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_archive_of(&name, project) {
            continue;
        }
        let path = entry.path();
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let summary = std::fs::read(sidecar(&path))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        found.push(Listed {
            path,
            size,
            summary,
        });
    }
    found.sort_by_key(|l| (l.created(), l.path.clone()));
    Ok(found)
}

/// `<project>-<stamp>.tar.zst[.age]`, the stamp letters and digits only
/// (so project `shop` does not take `shop-old`'s archives).
fn is_archive_of(name: &str, project: &str) -> bool {
    let Some(rest) = name.strip_prefix(project).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let stamp = rest
        .strip_suffix(".tar.zst")
        .or_else(|| rest.strip_suffix(".tar.zst.age"));
    stamp.is_some_and(|s| {
        s.starts_with(|c: char| c.is_ascii_digit()) && s.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_projects_archives_are_listed() {
        assert!(is_archive_of("shop-20261201T172306123Z.tar.zst", "shop"));
        assert!(is_archive_of(
            "shop-20261201T172306123Z.tar.zst.age",
            "shop"
        ));
        assert!(!is_archive_of(
            "shop-old-20261201T172306123Z.tar.zst",
            "shop"
        ));
        assert!(!is_archive_of(
            "shop-20261201T172306123Z.tar.zst.json",
            "shop"
        ));
        assert!(!is_archive_of(
            ".shop-20261201T172306123Z.tar.zst.partial",
            "shop"
        ));
        assert!(!is_archive_of("shop-.tar.zst", "shop"));
    }

    #[test]
    fn archive_names_sort_by_time() {
        assert_eq!(
            archive_name("shop", "2026-12-01T17:23:06Z", false),
            "shop-20261201T172306Z.tar.zst"
        );
        assert_eq!(
            archive_name("shop", "2026-12-01T17:23:06Z", true),
            "shop-20261201T172306Z.tar.zst.age"
        );
    }
}
