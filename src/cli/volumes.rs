//! Named volumes on disk: `<state_dir>/volumes/<name>`.

use berth_compose::Project;

/// Deletes the project's named volumes (not external ones); one line per volume.
pub fn remove(project: &Project) -> Vec<String> {
    let mut lines = Vec::new();
    for name in own_names(project) {
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

/// The project's own named volumes (not external ones), by the names the
/// engine and the state directory know them.
fn own_names(project: &Project) -> Vec<String> {
    project
        .volumes
        .iter()
        .filter(|(_, def)| def.get("external").and_then(serde_json::Value::as_bool) != Some(true))
        .map(|(key, _)| project.volume_name(key))
        .collect()
}

/// Deletes the project's named volumes the Docker Engine holds, when one
/// answers; one line per volume removed. The file's runtimes do not decide
/// it: a stack it keeps native may have run with `up --runtime docker`.
/// Only when the file has container services is a missing engine said.
pub async fn remove_docker(project: &Project) -> Vec<String> {
    let uses_docker = project
        .services
        .values()
        .any(|s| project.runtime_of(s, None) == berth_compose::RuntimeKind::Docker);
    match berth_engine::runtime::docker::DockerRuntime::connect(&project.name).await {
        Ok(docker) => docker.remove_volumes(&own_names(project)).await,
        Err(why) if uses_docker => vec![format!("the Docker volumes stay: {why}")],
        Err(_) => Vec::new(),
    }
}
