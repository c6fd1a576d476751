//! What a backup holds: the directories behind the chosen services' named
//! volumes (and bind mounts with `--binds`), each with the `exclude` globs
//! and `stop` of the services that mount it.

use std::path::PathBuf;

use berth_compose::{Project, RuntimeKind, VolumeKind};
use globset::{GlobSet, GlobSetBuilder};

use super::manifest::TreeKind;

/// One directory to archive.
#[derive(Debug, Clone)]
pub struct TreePlan {
    pub kind: TreeKind,
    /// The volume's name, or a bind source relative to the project directory.
    pub name: String,
    /// The volume's key in the file, or the bind source as written.
    pub key: String,
    /// Its members' prefix in the archive.
    pub prefix: String,
    /// Where it is on this machine.
    pub dir: PathBuf,
    pub services: Vec<String>,
    /// Every mounting service's `exclude` globs, as written.
    pub exclude: Vec<String>,
    /// A mounting service has `stop: true`.
    pub stop: bool,
    /// A named volume in the Docker Engine (of a service that runs as
    /// containers): `dir` is where berth stages its copy.
    pub engine: Option<EngineVolume>,
}

/// A named volume the Docker Engine keeps, and an image to mount it with
/// (the service's own: nothing is pulled).
#[derive(Debug, Clone)]
pub struct EngineVolume {
    pub volume: String,
    pub image: String,
}

impl TreePlan {
    /// The compiled `exclude` globs.
    ///
    /// # Errors
    /// A glob that does not compile (loading the file has checked them).
    pub fn excludes(&self) -> Result<GlobSet, String> {
        let mut set = GlobSetBuilder::new();
        for p in &self.exclude {
            set.add(berth_compose::xberth::exclude_glob(p)?);
        }
        set.build().map_err(|e| e.to_string())
    }
}

/// The services a verb works on: the ones named (each must exist), else all.
///
/// # Errors
/// A name that is not a service of the project.
pub fn services(project: &Project, named: &[String]) -> Result<Vec<String>, String> {
    if named.is_empty() {
        return Ok(project.services.keys().cloned().collect());
    }
    for n in named {
        if !project.services.contains_key(n) {
            return Err(format!("no such service: {n}"));
        }
    }
    Ok(named.to_vec())
}

/// The directories of `services`, in the order their services list them,
/// and warnings for what cannot be archived.
pub fn trees(project: &Project, services: &[String], binds: bool) -> (Vec<TreePlan>, Vec<String>) {
    let mut trees: Vec<TreePlan> = Vec::new();
    let mut warnings = Vec::new();
    for name in services {
        let Some(s) = project.services.get(name) else {
            continue;
        };
        let docker = project.runtime_of(s, None) == RuntimeKind::Docker;
        for v in &s.volumes {
            let (kind, key) = match (v.kind, &v.source) {
                (VolumeKind::Volume, Some(key)) => (TreeKind::Volume, key.clone()),
                (VolumeKind::Bind, Some(src)) if binds => (TreeKind::Bind, src.clone()),
                _ => continue,
            };
            let (tree_name, mut dir) = locate(project, kind, &key);
            if kind == TreeKind::Bind && project.settings.state_dir.starts_with(&dir) {
                warnings.push(format!(
                    "services.{name}: bind mount {tree_name} holds berth's state directory and is not archived"
                ));
                continue;
            }
            // A container's bind mount is a directory here like any other;
            // its named volume is the engine's, copied through a container.
            let engine = (docker && kind == TreeKind::Volume).then(|| {
                dir = project
                    .settings
                    .state_dir
                    .join("engine-volumes")
                    .join(&tree_name);
                EngineVolume {
                    volume: tree_name.clone(),
                    image: s
                        .image
                        .clone()
                        .unwrap_or_else(|| format!("{}-{name}", project.name)),
                }
            });
            let b = &s.settings.backup;
            if let Some(t) = trees
                .iter_mut()
                .find(|t| t.kind == kind && t.name == tree_name)
            {
                if !t.services.contains(name) {
                    t.services.push(name.clone());
                }
                t.exclude.extend(b.exclude.iter().cloned());
                t.stop |= b.stop;
                continue;
            }
            let prefix = match kind {
                TreeKind::Volume => format!("volumes/{tree_name}"),
                TreeKind::Bind => format!(
                    "binds/{}",
                    trees.iter().filter(|t| t.kind == TreeKind::Bind).count()
                ),
            };
            trees.push(TreePlan {
                kind,
                key,
                name: tree_name,
                prefix,
                dir,
                services: vec![name.clone()],
                exclude: b.exclude.clone(),
                stop: b.stop,
                engine,
            });
        }
    }
    (trees, warnings)
}

/// A tree's name and directory in `project` as it is now.
pub fn locate(project: &Project, kind: TreeKind, key: &str) -> (String, PathBuf) {
    match kind {
        TreeKind::Volume => {
            let volume = project.volume_name(key);
            let dir = project.settings.state_dir.join("volumes").join(&volume);
            (volume, dir)
        }
        TreeKind::Bind => {
            let dir = project.directory.join(key);
            let shown = match dir.strip_prefix(&project.directory) {
                Ok(p) if p.as_os_str().is_empty() => ".".to_string(),
                Ok(p) => p.display().to_string(),
                Err(_) => dir.display().to_string(),
            };
            (shown, dir)
        }
    }
}

pub fn kind_word(kind: TreeKind) -> &'static str {
    match kind {
        TreeKind::Volume => "volume",
        TreeKind::Bind => "bind mount",
    }
}
