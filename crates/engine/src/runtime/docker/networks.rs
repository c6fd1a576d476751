//! The project's networks on the engine: made (with `docker compose`'s
//! labels, `com.docker.compose.project` and `.network`) before the first
//! container joins them, an `external` one only checked, and removed by
//! label when the project goes (`down`, the guard, the next `up`).

use std::collections::HashMap;

use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkCreateRequest};
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptions};

use super::{DockerRuntime, MANAGED_LABEL};
use crate::runtime::{Network, NetworkAttachment};

impl DockerRuntime {
    /// Makes sure every network exists, each made at most once per run;
    /// external ones are all checked before any is made.
    ///
    /// # Errors
    /// An external network that does not exist, or one the engine cannot
    /// make, named.
    pub async fn networks(&self, networks: &[&Network]) -> Result<(), String> {
        let mut missing = Vec::new();
        for n in networks {
            if self.known(&n.name) {
                continue;
            }
            let exists = self
                .docker
                .inspect_network(&n.name, None::<InspectNetworkOptions>)
                .await
                .is_ok();
            if exists {
                self.remember(&n.name);
            } else if n.external {
                return Err(format!(
                    "external network {} does not exist: create it (docker network create {}) or drop `external: true` from networks.{}",
                    n.name, n.name, n.key
                ));
            } else {
                missing.push(*n);
            }
        }
        for n in missing {
            self.create_network(n).await?;
            self.remember(&n.name);
        }
        Ok(())
    }

    async fn create_network(&self, n: &Network) -> Result<(), String> {
        let mut labels: HashMap<String, String> = n.labels.clone().into_iter().collect();
        labels.insert("com.docker.compose.project".into(), self.project.clone());
        labels.insert("com.docker.compose.network".into(), n.key.clone());
        labels.insert(MANAGED_LABEL.into(), "true".into());
        let created = self
            .docker
            .create_network(NetworkCreateRequest {
                name: n.name.clone(),
                driver: Some(n.driver.clone().unwrap_or_else(|| "bridge".into())),
                internal: Some(n.internal),
                attachable: Some(n.attachable),
                options: Some(n.driver_opts.clone().into_iter().collect()),
                labels: Some(labels),
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => Ok(()),
            // Made meanwhile (another replica's spawn).
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(format!(
                "cannot create the network {} (networks.{} in the file): {e}",
                n.name, n.key
            )),
        }
    }

    /// Joins a created container to the networks after its first, under
    /// its service's name and the file's aliases.
    ///
    /// # Errors
    /// What the engine said, naming the network.
    pub(super) async fn join_others(
        &self,
        container: &str,
        service: &str,
        others: &[NetworkAttachment],
    ) -> Result<(), String> {
        for a in others {
            self.docker
                .connect_network(
                    &a.network.name,
                    NetworkConnectRequest {
                        container: container.to_string(),
                        endpoint_config: Some(endpoint(service, a)),
                    },
                )
                .await
                .map_err(|e| format!("cannot join the network {}: {e}", a.network.name))?;
        }
        Ok(())
    }

    /// Removes the networks berth made for the project (never an
    /// external one: berth did not make it). They must be empty: the
    /// containers go first.
    pub async fn remove_networks(&self) {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("com.docker.compose.project={}", self.project),
                format!("{MANAGED_LABEL}=true"),
            ],
        )]);
        let listed = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .unwrap_or_default();
        for name in listed.into_iter().filter_map(|n| n.name) {
            let _ = self.docker.remove_network(&name).await;
        }
        self.forget();
    }

    fn known(&self, name: &str) -> bool {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(name)
    }

    fn remember(&self, name: &str) {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_string());
    }

    fn forget(&self) {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// How a container joins one network: its service's name and the aliases.
pub(super) fn endpoint(service: &str, a: &NetworkAttachment) -> EndpointSettings {
    let mut aliases = vec![service.to_string()];
    aliases.extend(a.aliases.iter().cloned());
    EndpointSettings {
        aliases: Some(aliases),
        ..Default::default()
    }
}
