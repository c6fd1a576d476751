//! Named volumes on disk: `<state_dir>/volumes/<name>`.

use berth_compose::Project;

/// Deletes the project's named volumes (not external ones); one line per volume.
pub fn remove(project: &Project) -> Vec<String> {
    let mut lines = Vec::new();
    for (key, def) in &project.volumes {
        if def.get("external").and_then(serde_json::Value::as_bool) == Some(true) {
            continue;
        }
        let name = project.volume_name(key);
        let dir = project.settings.state_dir.join("volumes").join(&name);
        if dir.exists() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => lines.push(format!("volume {name}: removed")),
                Err(e) => lines.push(format!(
                    "volume {name}: cannot remove {}: {e}",
                    dir.display()
                )),
            }
        }
    }
    lines
}
