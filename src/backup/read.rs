//! Reading an archive: [`verify`] streams it once, hashing every member,
//! and compares it with the manifest (last member) before anything on disk
//! is touched; [`extract`] then unpacks the chosen trees into staging
//! directories beside their destinations and swaps each in with a rename.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::manifest::{FORMAT, MANIFEST, Manifest, Member, MemberKind};

/// The largest manifest read (a sane bound for a JSON file of members).
const MANIFEST_LIMIT: u64 = 256 << 20;

type Entries = tar::Archive<zstd::Decoder<'static, io::BufReader<Box<dyn Read>>>>;

fn archive(path: &Path, identity: Option<&Path>) -> Result<Entries> {
    let input = super::crypt::open(path, identity)?;
    let z = zstd::Decoder::new(input).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(tar::Archive::new(z))
}

fn member_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    let raw = entry.path_bytes();
    String::from_utf8_lossy(&raw)
        .trim_end_matches('/')
        .to_string()
}

/// Why reading stopped, naming where.
fn damaged(archive: &Path, member: Option<&str>, e: &io::Error) -> anyhow::Error {
    match member {
        Some(m) => anyhow::anyhow!(
            "{} is damaged in member {m}: {e}; nothing was changed",
            archive.display()
        ),
        None => anyhow::anyhow!(
            "{} is not a readable archive: {e}; nothing was changed",
            archive.display()
        ),
    }
}

/// Reads the whole archive, checking every member against the manifest.
///
/// # Errors
/// A damaged, truncated or foreign archive, naming the member.
pub fn verify(path: &Path, identity: Option<&Path>) -> Result<Manifest> {
    let mut ar = archive(path, identity)?;
    let mut seen: BTreeMap<String, Member> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let mut last: Option<String> = None;
    let entries = ar.entries().map_err(|e| damaged(path, None, &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(path, last.as_deref(), &e))?;
        let name = member_name(&entry);
        if manifest.is_some() {
            bail!(
                "{}: member {name} follows the manifest: not an archive berth wrote; nothing was changed",
                path.display()
            );
        }
        if name == MANIFEST {
            let mut text = Vec::new();
            (&mut entry)
                .take(MANIFEST_LIMIT)
                .read_to_end(&mut text)
                .map_err(|e| damaged(path, Some(MANIFEST), &e))?;
            let m: Manifest = serde_json::from_slice(&text).map_err(|e| {
                anyhow::anyhow!("{}: its manifest does not parse ({e}): the archive is damaged; nothing was changed", path.display())
            })?;
            manifest = Some(m);
            continue;
        }
        let member = read_member(&mut entry).map_err(|e| damaged(path, Some(&name), &e))?;
        seen.insert(name.clone(), member);
        last = Some(name);
    }
    let Some(manifest) = manifest else {
        match last {
            None => bail!(
                "{} holds nothing: it is empty or not a berth archive; nothing was changed",
                path.display()
            ),
            Some(m) => bail!(
                "{} ends after member {m} without its manifest: it is truncated or was not written completely; nothing was changed",
                path.display()
            ),
        }
    };
    if manifest.format != FORMAT {
        bail!(
            "{} is in format {:?}, which this berth does not read (it reads {FORMAT})",
            path.display(),
            manifest.format
        );
    }
    compare(path, &manifest, &seen)?;
    Ok(manifest)
}

fn read_member<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Member> {
    let kind = entry.header().entry_type();
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let mut hash = Sha256::new();
            let size = io::copy(entry, &mut HashWriter(&mut hash))?;
            if size != entry.size() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "it ends early",
                ));
            }
            let sha256 = Some(super::write::hex(&hash.finalize()));
            Ok(Member {
                kind: MemberKind::File,
                size,
                sha256,
                link: None,
            })
        }
        tar::EntryType::Directory => Ok(Member {
            kind: MemberKind::Dir,
            size: 0,
            sha256: None,
            link: None,
        }),
        tar::EntryType::Symlink => {
            let link = entry.link_name()?.map(|l| l.to_string_lossy().into_owned());
            Ok(Member {
                kind: MemberKind::Symlink,
                size: 0,
                sha256: None,
                link,
            })
        }
        other => Err(io::Error::other(format!(
            "a member of type {other:?}, which berth does not write"
        ))),
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn compare(path: &Path, manifest: &Manifest, seen: &BTreeMap<String, Member>) -> Result<()> {
    for (name, want) in &manifest.members {
        let Some(got) = seen.get(name) else {
            bail!(
                "{}: member {name} is missing: the archive is truncated or damaged; nothing was changed",
                path.display()
            );
        };
        if got.sha256 != want.sha256 || got.size != want.size {
            bail!(
                "{}: member {name} does not match its SHA-256 in the manifest: the archive is damaged; nothing was changed",
                path.display()
            );
        }
        if got != want {
            bail!(
                "{}: member {name} is not what the manifest says it is; nothing was changed",
                path.display()
            );
        }
    }
    if let Some(name) = seen.keys().find(|n| !manifest.members.contains_key(*n)) {
        bail!(
            "{}: member {name} is not in the manifest; nothing was changed",
            path.display()
        );
    }
    Ok(())
}

/// Where one archived tree goes back to.
#[derive(Debug, Clone)]
pub struct Target {
    pub prefix: String,
    pub dir: PathBuf,
}

impl Target {
    fn stage(&self) -> PathBuf {
        sibling(&self.dir, "berth-restore")
    }
}

/// `.<name>.<tag>` beside `path`.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}"))
}

/// Unpacks `targets` (each replaced whole) and copies `dumps` (member ->
/// file); only after every one is staged are the trees swapped in.
///
/// # Errors
/// Reading, writing or renaming failing; staged copies are removed then,
/// and the trees not yet swapped stay as they were.
pub fn extract(
    path: &Path,
    identity: Option<&Path>,
    targets: &[Target],
    dumps: &BTreeMap<String, PathBuf>,
    progress: &super::progress::Progress,
) -> Result<()> {
    let staged = stage(path, identity, targets, dumps, progress);
    progress.done();
    if let Err(e) = staged {
        for t in targets {
            remove_any(&t.stage());
        }
        return Err(e);
    }
    for t in targets {
        swap(t)?;
    }
    Ok(())
}

fn stage(
    path: &Path,
    identity: Option<&Path>,
    targets: &[Target],
    dumps: &BTreeMap<String, PathBuf>,
    progress: &super::progress::Progress,
) -> Result<()> {
    for t in targets {
        remove_any(&t.stage());
        if let Some(parent) = t.dir.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    let mut ar = archive(path, identity)?;
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(nix::unistd::geteuid().is_root());
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    let mut dirs = Vec::new();
    let mut last: Option<String> = None;
    for entry in ar.entries().map_err(|e| damaged(path, None, &e))? {
        let mut entry = entry.map_err(|e| damaged(path, last.as_deref(), &e))?;
        let name = member_name(&entry);
        progress.add(entry.size());
        if let Some(spool) = dumps.get(&name) {
            let mut out = std::fs::File::create(spool)
                .with_context(|| format!("cannot create {}", spool.display()))?;
            io::copy(&mut entry, &mut out).map_err(|e| damaged(path, Some(&name), &e))?;
        } else if let Some((t, rel)) = targets
            .iter()
            .find_map(|t| relative(&name, &t.prefix).map(|r| (t, r)))
        {
            // The tree's own root (a file, for a file bind) is the stage itself.
            let dest = if rel.as_os_str().is_empty() {
                t.stage()
            } else {
                t.stage().join(&rel)
            };
            inside(&t.stage(), &rel).with_context(|| format!("cannot restore member {name}"))?;
            unpack(&mut entry, &dest, &mut dirs)
                .with_context(|| format!("cannot restore member {name} to {}", dest.display()))?;
        }
        last = Some(name);
    }
    // Deepest first, so setting a directory's time is not undone by its children.
    dirs.sort_by_key(|d: &DirMeta| std::cmp::Reverse(d.path.components().count()));
    for d in dirs {
        d.apply()
            .with_context(|| format!("cannot set the mode and time of {}", d.path.display()))?;
    }
    Ok(())
}

/// `name` under `prefix` as a relative path of plain components.
fn relative(name: &str, prefix: &str) -> Option<PathBuf> {
    let rest = if name == prefix {
        ""
    } else {
        name.strip_prefix(prefix)?.strip_prefix('/')?
    };
    let rel = PathBuf::from(rest);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(rel)
}

/// No directory on the way from `root` to `rel` is a symlink (a member
/// under a symlinked directory would land outside the tree).
fn inside(root: &Path, rel: &Path) -> io::Result<()> {
    let mut at = root.to_path_buf();
    let mut parts: Vec<_> = rel.components().collect();
    parts.pop();
    for c in parts {
        at.push(c);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(io::Error::other(format!(
                "{} is a symlink: a member under it would land outside the volume",
                at.display()
            )));
        }
    }
    Ok(())
}

struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: u64,
    owner: Option<(u32, u32)>,
}

impl DirMeta {
    fn apply(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&self.path, Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode))?;
        let t = filetime::FileTime::from_unix_time(i64::try_from(self.mtime).unwrap_or(0), 0);
        filetime::set_file_mtime(&self.path, t)
    }
}

fn unpack<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dest: &Path,
    dirs: &mut Vec<DirMeta>,
) -> io::Result<()> {
    let h = entry.header();
    if h.entry_type() == tar::EntryType::Directory {
        std::fs::create_dir_all(dest)?;
        let owner = match (nix::unistd::geteuid().is_root(), h.uid(), h.gid()) {
            (true, Ok(uid), Ok(gid)) => Some((
                u32::try_from(uid).unwrap_or(0),
                u32::try_from(gid).unwrap_or(0),
            )),
            _ => None,
        };
        dirs.push(DirMeta {
            path: dest.to_path_buf(),
            mode: h.mode()? & 0o7777,
            mtime: h.mtime()?,
            owner,
        });
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    entry.unpack(dest).map(|_| ())
}

/// Replaces `t.dir` with its staged copy.
fn swap(t: &Target) -> Result<()> {
    let stage = t.stage();
    if std::fs::symlink_metadata(&stage).is_err() {
        // The tree had no members (a volume never used): an empty directory.
        std::fs::create_dir_all(&stage)
            .with_context(|| format!("cannot create {}", stage.display()))?;
    }
    let old = sibling(&t.dir, "berth-old");
    remove_any(&old);
    let had = std::fs::symlink_metadata(&t.dir).is_ok();
    if had {
        std::fs::rename(&t.dir, &old)
            .with_context(|| format!("cannot move {} aside", t.dir.display()))?;
    }
    if let Err(e) = std::fs::rename(&stage, &t.dir) {
        if had {
            let _ = std::fs::rename(&old, &t.dir);
        }
        return Err(e)
            .with_context(|| format!("cannot put the restored {} in place", t.dir.display()));
    }
    remove_any(&old);
    Ok(())
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_outside_their_tree_are_not_extracted() {
        assert_eq!(relative("volumes/a", "volumes/a"), Some(PathBuf::new()));
        assert_eq!(
            relative("volumes/a/x/y", "volumes/a"),
            Some(PathBuf::from("x/y"))
        );
        assert_eq!(relative("volumes/ab/x", "volumes/a"), None);
        assert_eq!(relative("volumes/a/../../etc/passwd", "volumes/a"), None);
        assert_eq!(relative("volumes/a//etc", "volumes/a"), None);
    }
}
