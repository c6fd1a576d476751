//! Private files: what services print and store is readable by the user
//! who runs berth and nobody else (like Docker's data root). Directories
//! are 0700, files 0600, and files are opened without following a
//! symbolic link someone may have planted in their place.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) as 0700, and takes group and other
/// access away from it if it already existed with more.
///
/// # Errors
/// When it cannot be created or its mode cannot be changed.
pub fn dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Options for a private file: created 0600, never through a symbolic link.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    o
}

/// Opens `path` for appending (created 0600 if missing).
///
/// # Errors
/// As `open(2)`; a symbolic link in its place is refused with a message
/// saying so.
pub fn append(path: &Path) -> io::Result<File> {
    refuse_links(path, options().create(true).append(true).open(path))
}

/// Creates or truncates `path` (0600).
///
/// # Errors
/// As [`append`].
pub fn create(path: &Path) -> io::Result<File> {
    refuse_links(
        path,
        options().create(true).write(true).truncate(true).open(path),
    )
}

fn refuse_links(path: &Path, opened: io::Result<File>) -> io::Result<File> {
    match opened {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is a symbolic link; berth does not write through one",
                path.display()
            ),
        )),
        other => other,
    }
}

/// Lets other users pass through a private directory without listing it
/// (adds `o+x`: 0700 becomes 0701), for a service running as another user
/// to reach its own directories below it.
///
/// # Errors
/// The directory cannot be read or changed.
pub fn passable(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o001 == 0 {
        std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode((mode | 0o001) & 0o7777),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_and_directories_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("state/logs");
        dir(&d).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700, "an existing open directory is closed");
        let f = d.join("web-1.log");
        append(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, "precious").unwrap();
        let link = tmp.path().join("web-1.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = append(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(create(&link).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    }
}
