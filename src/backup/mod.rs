//! Backups: a stack's named volumes (and bind mounts with `--binds`) and
//! its services' dumps in one archive, verified before anything is
//! restored, optionally encrypted with age.
//!
//! # Format
//! A tar stream compressed with zstd (level 3):
//! `volumes/<volume>/…` (directories, files and symlinks with their modes,
//! owners and times), `binds/<n>/…`, `dumps/<service>`, and last
//! `manifest.json` ([`manifest::Manifest`]: project, services, trees, sizes,
//! the SHA-256 of every file, berth version, time). With
//! `x-berth.backup.encrypt_to` the whole `.tar.zst` is an age file (`.age`).
//! Each archive has a sidecar `<archive>.json` ([`manifest::Summary`]) for
//! `berth backups`.
//!
//! # Layout
//! - `manifest.rs`: the manifest and the sidecar summary.
//! - `plan.rs`: which directories a backup holds.
//! - `write.rs`: writing an archive (temporary name, fsync, rename).
//! - `read.rs`: verifying and extracting.
//! - `crypt.rs`: age encryption.
//! - `list.rs`: the archives in a directory.
//! - `keep.rs`: which archives `keep` keeps.
//! - `progress.rs`: bytes and rate on a terminal.
//! - `schedule.rs`: `schedule` while `up` runs, with an injectable clock.

pub mod container;
pub mod crypt;
pub mod keep;
pub mod list;
pub mod manifest;
pub mod plan;
pub mod progress;
pub mod read;
pub mod schedule;
pub mod write;
