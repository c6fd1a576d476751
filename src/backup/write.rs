//! Writing an archive: tar members through zstd (and age, when encrypting)
//! into a temporary file beside the final one, each file's SHA-256 taken as
//! it streams, the manifest last; then fsync and rename, so the final name
//! only ever holds a complete archive.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::manifest::{MANIFEST, Manifest, Member, MemberKind, Tree};
use super::plan::TreePlan;
use super::progress::Progress;

/// The layers under tar: the file, maybe encrypted.
enum Sink {
    Plain(BufWriter<File>),
    Age(age::stream::StreamWriter<BufWriter<File>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

/// An archive being written.
pub struct Writer {
    tar: tar::Builder<zstd::Encoder<'static, Sink>>,
    temp: PathBuf,
    path: PathBuf,
    pub members: BTreeMap<String, Member>,
    /// Files that changed size while they were read.
    pub changed: Vec<String>,
    pub progress: Progress,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("path", &self.path).finish()
    }
}

/// The temporary name an archive is written under.
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

impl Writer {
    /// Starts an archive that will be `path` once finished; encrypted to
    /// `recipients` when there are any.
    ///
    /// # Errors
    /// The temporary file cannot be made, or a recipient is not an age one.
    pub fn create(path: &Path, recipients: &[String], progress: Progress) -> Result<Writer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let temp = temp_name(path);
        let file =
            File::create(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        let sink = match super::crypt::encryptor(recipients)? {
            None => Sink::Plain(out),
            Some(enc) => Sink::Age(
                enc.wrap_output(out)
                    .with_context(|| format!("cannot write {}", temp.display()))?,
            ),
        };
        let result = (|| {
            // No frame checksum: every member has its SHA-256, which names
            // the damaged member where a frame checksum would fail at the end.
            let mut z = zstd::Encoder::new(sink, 3)?;
            // One worker compresses while this thread reads and hashes.
            let _ = z.multithread(1);
            Ok::<_, io::Error>(z)
        })();
        let z = match result {
            Ok(z) => z,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e).context("cannot start zstd");
            }
        };
        let mut tar = tar::Builder::new(z);
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        Ok(Writer {
            tar,
            temp,
            path: path.to_path_buf(),
            members: BTreeMap::new(),
            changed: Vec::new(),
            progress,
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the temporary file (after a failure).
    pub fn abandon(self) {
        let temp = self.temp.clone();
        drop(self);
        let _ = std::fs::remove_file(temp);
    }

    fn context(&self, e: io::Error, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot write the archive {} ({what}): {e}",
            self.temp.display()
        )
    }

    /// Archives one directory (or file) under its prefix; its [`Tree`] entry.
    ///
    /// # Errors
    /// A file that cannot be read, or the archive that cannot be written.
    pub fn tree(&mut self, plan: &TreePlan) -> Result<Tree> {
        let excludes = plan.excludes().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut tree = Tree {
            kind: plan.kind,
            name: plan.name.clone(),
            key: plan.key.clone(),
            prefix: plan.prefix.clone(),
            services: plan.services.clone(),
            files: 0,
            bytes: 0,
        };
        if std::fs::symlink_metadata(&plan.dir).is_err() {
            // A volume never started has no directory yet: an empty one.
            return Ok(tree);
        }
        let mut stack = vec![(plan.dir.clone(), String::new())];
        while let Some((path, rel)) = stack.pop() {
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let member = if rel.is_empty() {
                plan.prefix.clone()
            } else {
                format!("{}/{rel}", plan.prefix)
            };
            if meta.is_dir() {
                self.entry_dir(&member, &meta)?;
                let mut children: Vec<_> = std::fs::read_dir(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .filter_map(|e| e.ok())
                    .collect();
                children.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
                for child in children {
                    let name = child.file_name().to_string_lossy().into_owned();
                    let child_rel = if rel.is_empty() {
                        name
                    } else {
                        format!("{rel}/{name}")
                    };
                    if !excludes.is_match(&child_rel) {
                        stack.push((child.path(), child_rel));
                    }
                }
            } else if meta.is_file() {
                let size = self.entry_file(&member, &path, &meta)?;
                tree.files += 1;
                tree.bytes += size;
            } else if meta.file_type().is_symlink() {
                self.entry_symlink(&member, &path, &meta)?;
            }
            // Sockets, fifos and devices are not data: left out.
        }
        Ok(tree)
    }

    fn entry_dir(&mut self, member: &str, meta: &std::fs::Metadata) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        h.set_size(0);
        self.tar
            .append_data(&mut h, member, io::empty())
            .map_err(|e| self.context(e, member))?;
        self.members.insert(
            member.to_string(),
            Member {
                kind: MemberKind::Dir,
                size: 0,
                sha256: None,
                link: None,
            },
        );
        Ok(())
    }

    fn entry_symlink(&mut self, member: &str, path: &Path, meta: &std::fs::Metadata) -> Result<()> {
        let target = std::fs::read_link(path)
            .with_context(|| format!("cannot read the link {}", path.display()))?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        h.set_size(0);
        self.tar
            .append_link(&mut h, member, &target)
            .map_err(|e| self.context(e, member))?;
        let link = Some(target.to_string_lossy().into_owned());
        self.members.insert(
            member.to_string(),
            Member {
                kind: MemberKind::Symlink,
                size: 0,
                sha256: None,
                link,
            },
        );
        Ok(())
    }

    fn entry_file(&mut self, member: &str, path: &Path, meta: &std::fs::Metadata) -> Result<u64> {
        let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        self.append_stream(member, &mut h, file, meta.len())
    }

    /// A file member from a stream of exactly `size` bytes (padded with
    /// zeros, and noted, when it turns out shorter).
    fn append_stream(
        &mut self,
        member: &str,
        h: &mut tar::Header,
        data: impl Read,
        size: u64,
    ) -> Result<u64> {
        h.set_size(size);
        // Large reads: a syscall per MiB, not per tar block.
        let mut reader = Exact {
            inner: io::BufReader::with_capacity(1 << 20, data.take(size)),
            left: size,
            short: false,
            hash: Sha256::new(),
            progress: &self.progress,
        };
        let result = self.tar.append_data(h, member, &mut reader);
        let (short, hash) = (reader.short, reader.hash.finalize());
        result.map_err(|e| self.context(e, member))?;
        if short {
            self.changed.push(member.to_string());
        }
        let sha256 = Some(hex(&hash));
        self.members.insert(
            member.to_string(),
            Member {
                kind: MemberKind::File,
                size,
                sha256,
                link: None,
            },
        );
        Ok(size)
    }

    /// A dump, from the file it was spooled to.
    ///
    /// # Errors
    /// The spool cannot be read or the archive written.
    pub fn dump(&mut self, member: &str, spool: &Path) -> Result<u64> {
        let file = File::open(spool).with_context(|| format!("cannot read {}", spool.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot read {}", spool.display()))?;
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o600);
        h.set_mtime(
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        );
        h.set_entry_type(tar::EntryType::Regular);
        self.append_stream(member, &mut h, file, meta.len())
    }

    /// Writes the manifest, closes every layer, syncs and renames the file
    /// to its final name.
    ///
    /// # Errors
    /// Any write, sync or rename failing; the temporary file is removed then.
    pub fn finish(self, manifest: &Manifest) -> Result<PathBuf> {
        let Writer {
            tar, temp, path, ..
        } = self;
        let result = close(tar, &temp, &path, manifest);
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map(|()| path)
    }
}

fn close(
    mut tar: tar::Builder<zstd::Encoder<'static, Sink>>,
    temp: &Path,
    path: &Path,
    manifest: &Manifest,
) -> Result<()> {
    let json = serde_json::to_vec_pretty(manifest).context("cannot write the manifest")?;
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(json.len() as u64);
    h.set_mtime(now_secs());
    h.set_entry_type(tar::EntryType::Regular);
    let fail = |e: io::Error| anyhow::anyhow!("cannot write the archive {}: {e}", temp.display());
    tar.append_data(&mut h, MANIFEST, json.as_slice())
        .map_err(fail)?;
    let sink = tar.into_inner().map_err(fail)?.finish().map_err(fail)?;
    let out = match sink {
        Sink::Plain(w) => w,
        Sink::Age(w) => w.finish().map_err(fail)?,
    };
    let file = out.into_inner().map_err(|e| fail(e.into_error()))?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(temp, path)
        .with_context(|| format!("cannot rename {} to {}", temp.display(), path.display()))?;
    if let Some(dir) = path.parent().and_then(|d| File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads exactly `left` bytes, hashing them; zeros after an early end.
struct Exact<'a, R> {
    inner: R,
    left: u64,
    short: bool,
    hash: Sha256,
    progress: &'a Progress,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.short = true;
            buf[..want].fill(0);
            n = want;
        }
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        self.progress.add(n as u64);
        Ok(n)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
