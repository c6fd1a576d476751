//! Keeping static paths inside their root.
//!
//! Two guards: [`check_path`] rejects request paths that try to climb out
//! (`..` however encoded, backslashes, NUL) before any file is touched, and
//! [`Confined`] is the `ServeDir` backend that resolves symlinks and refuses
//! any file whose real path is outside the root.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use tower_http::services::fs::{Backend, TokioBackend, TokioFile};

/// Why a static path was refused before touching the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadPath {
    /// Not valid percent-encoded UTF-8.
    Encoding,
    /// A `..` segment, a backslash or a NUL.
    Traversal,
}

/// Checks a request path (still percent-encoded) for escape attempts.
pub(crate) fn check_path(path: &str) -> Result<(), BadPath> {
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| BadPath::Encoding)?;
    if decoded.contains(['\\', '\0']) {
        return Err(BadPath::Traversal);
    }
    if decoded.split('/').any(|segment| segment == "..") {
        return Err(BadPath::Traversal);
    }
    Ok(())
}

/// A `ServeDir` backend that only opens files whose real path is in `root`.
#[derive(Debug, Clone)]
pub(crate) struct Confined {
    /// Canonical (symlinks resolved) root directory.
    root: Arc<Path>,
}

impl Confined {
    /// # Errors
    /// When `root` does not exist or cannot be resolved.
    pub(crate) fn new(root: &Path) -> io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Confined { root: root.into() })
    }

    /// The canonical root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    async fn resolve(root: Arc<Path>, path: PathBuf) -> io::Result<PathBuf> {
        let real = tokio::fs::canonicalize(&path).await?;
        if real.starts_with(&root) {
            Ok(real)
        } else {
            tracing::warn!(path = %path.display(), "refused a file outside the static root");
            Err(io::Error::from(io::ErrorKind::NotFound))
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl Backend for Confined {
    type File = TokioFile;
    type Metadata = std::fs::Metadata;
    type OpenFuture = BoxFuture<TokioFile>;
    type MetadataFuture = BoxFuture<std::fs::Metadata>;

    fn open(&self, path: PathBuf) -> Self::OpenFuture {
        let root = self.root.clone();
        Box::pin(async move {
            let real = Confined::resolve(root, path).await?;
            TokioBackend.open(real).await
        })
    }

    fn metadata(&self, path: PathBuf) -> Self::MetadataFuture {
        let root = self.root.clone();
        Box::pin(async move {
            let real = Confined::resolve(root, path).await?;
            tokio::fs::metadata(real).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_attempts_are_refused() {
        assert_eq!(check_path("/a/b.js"), Ok(()));
        assert_eq!(check_path("/a..b/c"), Ok(()));
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/x",
            "/a/%2E%2E%2Fx",
            "/..%5cx",
            "/a%00b",
            "/a\\b",
        ] {
            assert_eq!(check_path(bad), Err(BadPath::Traversal), "{bad}");
        }
        assert_eq!(check_path("/%ff"), Err(BadPath::Encoding));
    }

    #[tokio::test]
    async fn symlinks_out_of_the_root_are_not_found() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("ok"), "o").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link"))
            .unwrap();
        let backend = Confined::new(root.path()).unwrap();
        assert!(backend.metadata(root.path().join("ok")).await.is_ok());
        let err = backend.open(root.path().join("link")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
