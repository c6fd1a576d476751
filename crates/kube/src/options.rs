//! What the command line says about the export: the namespace, the
//! Kubernetes version, where images come from, the ingress class.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// How to export a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `metadata.namespace` of every object; `None` leaves it to `kubectl`.
    pub namespace: Option<String>,
    pub kube_version: KubeVersion,
    /// Put before the image of every service that is built (`build:`), so
    /// the cluster pulls what was pushed there (`registry.example.com/team/`).
    pub image_prefix: Option<String>,
    /// `spec.ingressClassName` of the Ingress; also says which controller's
    /// annotations express what an Ingress cannot (`nginx`, `kong`).
    pub ingress_class: Option<String>,
    /// The image of the init containers that wait for a dependency's port.
    pub wait_image: String,
    /// The image of the init containers that wait for a one-shot Job
    /// (`kubectl wait`); `None`: the official image of `kube_version`.
    pub kubectl_image: Option<String>,
    /// Images by service (`--image SERVICE=IMAGE`), over anything the file says.
    pub images: BTreeMap<String, String>,
    /// The contents of the files `configs:` name (see [`crate::files_to_read`]),
    /// read by the caller: the export itself does no I/O.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

/// The default `--wait-image`.
pub const DEFAULT_WAIT_IMAGE: &str = "busybox:1.36";

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: None,
            kube_version: KubeVersion::DEFAULT,
            image_prefix: None,
            ingress_class: None,
            wait_image: DEFAULT_WAIT_IMAGE.to_string(),
            kubectl_image: None,
            images: BTreeMap::new(),
            files: BTreeMap::new(),
        }
    }
}

impl Options {
    /// The image that runs `kubectl wait` for Jobs.
    pub fn kubectl_image(&self) -> String {
        self.kubectl_image
            .clone()
            .unwrap_or_else(|| format!("registry.k8s.io/kubectl:v{}.0", self.kube_version))
    }
}

/// A Kubernetes minor version the export writes for (`1.33`).
///
/// The manifests only use fields that are generally available in every
/// supported version, so they are the same for all of them; the version
/// picks the tag of the `kubectl` image and is the schema the test suite
/// validates against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    minor: u16,
}

impl KubeVersion {
    /// Every supported version, oldest first.
    pub const SUPPORTED: [KubeVersion; 5] = [
        KubeVersion { minor: 33 },
        KubeVersion { minor: 34 },
        KubeVersion { minor: 35 },
        KubeVersion { minor: 36 },
        KubeVersion { minor: 37 },
    ];

    /// The oldest supported version: manifests for it apply to every later one.
    pub const DEFAULT: KubeVersion = KubeVersion { minor: 33 };

    /// Reads `1.33`, `v1.33` or `1.33.2`.
    ///
    /// # Errors
    /// A message listing the supported versions when it is not one of them.
    pub fn parse(text: &str) -> Result<KubeVersion, String> {
        let bare = text.trim().trim_start_matches('v');
        let mut parts = bare.split('.');
        let minor = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("1"), Some(minor), patch, None)
                if patch.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                minor.parse::<u16>().ok()
            }
            _ => None,
        };
        minor
            .map(|minor| KubeVersion { minor })
            .filter(|v| Self::SUPPORTED.contains(v))
            .ok_or_else(|| {
                let list: Vec<String> = Self::SUPPORTED.iter().map(|v| v.to_string()).collect();
                format!(
                    "Kubernetes version {text:?} is not supported; supported versions: {}",
                    list.join(", ")
                )
            })
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_in_every_usual_spelling() {
        for text in ["1.33", "v1.33", "1.33.0", "1.33.12", " 1.33 "] {
            assert_eq!(KubeVersion::parse(text), Ok(KubeVersion::DEFAULT), "{text}");
        }
        assert_eq!(
            KubeVersion::parse("1.37").map(|v| v.to_string()),
            Ok("1.37".into())
        );
        for text in [
            "1.32", "1.38", "2.33", "1", "1.33.", "1.33.x", "", "1.33.0.1", "latest",
        ] {
            let err = KubeVersion::parse(text).unwrap_err();
            assert!(
                err.contains("1.33, 1.34, 1.35, 1.36, 1.37"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn the_kubectl_image_follows_the_version() {
        let mut o = Options::default();
        assert_eq!(o.kubectl_image(), "registry.k8s.io/kubectl:v1.33.0");
        o.kube_version = KubeVersion::parse("1.37").unwrap();
        assert_eq!(o.kubectl_image(), "registry.k8s.io/kubectl:v1.37.0");
        o.kubectl_image = Some("k:1".into());
        assert_eq!(o.kubectl_image(), "k:1");
    }
}
