//! What a deploy asks of the engine's images: whether the image a
//! service's containers run is still the one its tag names (a `docker
//! build` since, or `berth up --build`, gives the same tag a new ID).

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptions;

use super::{DockerRuntime, MANAGED_LABEL};

impl DockerRuntime {
    /// The ID of the image `image` names on this machine, if it is here.
    pub async fn image_id(&self, image: &str) -> Option<String> {
        self.docker.inspect_image(image).await.ok()?.id
    }

    /// The IDs of the images the running containers of `service` were
    /// created from (each replica's newest), sorted, each once.
    pub async fn running_image_ids(&self, service: &str) -> Vec<String> {
        let filters = HashMap::from([
            (
                "label".to_string(),
                vec![
                    format!("com.docker.compose.project={}", self.project),
                    format!("com.docker.compose.service={service}"),
                    format!("{MANAGED_LABEL}=true"),
                ],
            ),
            ("status".to_string(), vec!["running".to_string()]),
        ]);
        let listed = self
            .docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .unwrap_or_default();
        // Per replica its newest container: the one a rolling restart
        // replaced may still be draining.
        let mut newest: HashMap<String, (i64, String)> = HashMap::new();
        for c in listed {
            let number = c
                .labels
                .as_ref()
                .and_then(|l| l.get("com.docker.compose.container-number").cloned())
                .unwrap_or_default();
            let (Some(created), Some(id)) = (c.created, c.image_id) else {
                continue;
            };
            let entry = newest.entry(number).or_insert((created, id.clone()));
            if created > entry.0 {
                *entry = (created, id);
            }
        }
        let mut ids: Vec<String> = newest.into_values().map(|(_, id)| id).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Whether some running container of `service` runs another image
    /// than the one `image` names now.
    pub async fn image_changed(&self, service: &str, image: &str) -> bool {
        let Some(now) = self.image_id(image).await else {
            return false;
        };
        self.running_image_ids(service)
            .await
            .iter()
            .any(|id| *id != now)
    }
}
