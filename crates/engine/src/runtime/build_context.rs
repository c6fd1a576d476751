//! A build context as the engine's build endpoint takes it: a tar of the
//! context directory without what `.dockerignore` leaves out, as
//! `docker build` sends it.
//!
//! `.dockerignore` as Docker reads it: one pattern a line (`#` comments and
//! blank lines skipped, a leading `/` ignored), Go's `filepath.Match` with
//! `**` for any number of directories, a match on a directory leaving out
//! everything in it, `!` taking a path back, the last matching line
//! deciding. The Dockerfile and `.dockerignore` are sent whatever the
//! patterns say (the builder needs them). Symbolic links go as links.

use std::io;
use std::path::Path;

use globset::GlobMatcher;

/// The patterns of a `.dockerignore`.
#[derive(Debug, Default)]
pub(crate) struct Ignore {
    /// Each pattern and whether it takes paths back (`!`).
    rules: Vec<(GlobMatcher, bool)>,
}

impl Ignore {
    /// The patterns of `text`; a pattern that does not parse is an error
    /// naming its line.
    pub(crate) fn parse(text: &str) -> Result<Ignore, String> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, keep) = match line.strip_prefix('!') {
                Some(p) => (p.trim(), true),
                None => (line, false),
            };
            let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
            let pattern = pattern.strip_prefix("./").unwrap_or(pattern);
            if pattern.is_empty() {
                continue;
            }
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!(".dockerignore line {}: {e}", n + 1))?;
            rules.push((glob.compile_matcher(), keep));
        }
        Ok(Ignore { rules })
    }

    /// Whether `path` (relative, `/`-separated) is left out: the last
    /// pattern matching it or one of its parent directories decides.
    pub(crate) fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (glob, keep) in &self.rules {
            let mut prefix = path;
            let matched = loop {
                if glob.is_match(prefix) {
                    break true;
                }
                match prefix.rsplit_once('/') {
                    Some((parent, _)) => prefix = parent,
                    None => break false,
                };
            };
            if matched {
                excluded = !keep;
            }
        }
        excluded
    }

    /// Whether a directory left out may still hold something a `!`
    /// pattern takes back (then it must be walked).
    fn takes_back(&self) -> bool {
        self.rules.iter().any(|(_, keep)| *keep)
    }
}

/// The context directory as a tar, in memory, without what its
/// `.dockerignore` leaves out; `dockerfile` (relative) always goes.
pub(crate) fn context_tar(dir: &Path, dockerfile: &str) -> io::Result<Vec<u8>> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text).map_err(io::Error::other)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(e),
    };
    let always = [dockerfile.trim_start_matches("./"), ".dockerignore"];
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    add_dir(&mut archive, dir, "", &ignore, &always)?;
    archive.into_inner()
}

fn add_dir(
    archive: &mut tar::Builder<Vec<u8>>,
    root: &Path,
    relative: &str,
    ignore: &Ignore,
    always: &[&str],
) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(relative))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = if relative.is_empty() {
            name.to_string()
        } else {
            format!("{relative}/{name}")
        };
        let excluded = ignore.excludes(&path) && !always.contains(&path.as_str());
        let is_dir = entry.file_type()?.is_dir();
        if excluded && !(is_dir && ignore.takes_back()) {
            continue;
        }
        if !excluded {
            archive.append_path_with_name(entry.path(), &path)?;
        }
        if is_dir {
            add_dir(archive, root, &path, ignore, always)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar);
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn patterns_follow_dockers_rules() {
        let ignore = Ignore::parse(
            "# comment\n\nnode_modules\n*.log\n/build/\n**/*.tmp\ndocs/*\n!docs/keep.md\n",
        )
        .unwrap();
        for (path, out) in [
            ("node_modules", true),
            ("node_modules/x/y.js", true),
            ("src/node_modules", false),
            ("app.log", true),
            ("logs/app.log", false),
            ("build/out.bin", true),
            ("a/b/c.tmp", true),
            ("c.tmp", true),
            ("docs/a.md", true),
            ("docs/keep.md", false),
            ("src/main.rs", false),
        ] {
            assert_eq!(ignore.excludes(path), out, "{path}");
        }
        let err = Ignore::parse("ok\n\n[unclosed\n").unwrap_err();
        assert!(err.starts_with(".dockerignore line 3: "), "{err}");
    }

    #[test]
    fn the_context_leaves_out_what_dockerignore_says_but_never_the_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for file in [
            "Dockerfile",
            "app.py",
            "node_modules/big/x.js",
            "docs/a.md",
            "docs/keep.md",
            "debug.log",
        ] {
            let path = d.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        std::fs::write(
            d.join(".dockerignore"),
            "node_modules\ndocs\n!docs/keep.md\n*.log\nDockerfile\n",
        )
        .unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("app.py", d.join("link.py")).unwrap();
        let tar = context_tar(d, "Dockerfile").unwrap();
        let mut want = vec![".dockerignore", "Dockerfile", "app.py", "docs/keep.md"];
        if cfg!(unix) {
            want.push("link.py");
        }
        want.sort_unstable();
        assert_eq!(names(&tar), want);
        // Without a .dockerignore everything goes.
        std::fs::remove_file(d.join(".dockerignore")).unwrap();
        assert_eq!(names(&context_tar(d, "Dockerfile").unwrap()).len(), 10);
    }
}
