//! Self-healing (ADR 0009): once the registry runs from its own image, the operator keeps a copy
//! of that image in its cache volume (an OCI layout); when the registry later cannot pull its image
//! (its node lost, the image garbage-collected), the registry is seeded again from that copy by the
//! same steps `kubectl jackal init` runs: payload ConfigMaps, injector, registry from the seed,
//! images pushed, registry back on its own image, cleanup. A registry that runs but lost its
//! content (a pod restarted on an emptyDir, its image still cached on the node) gets its own image
//! pushed back from the copy.

use std::path::{Path, PathBuf};

use jackal_core::bootstrap::steps::{Bootstrap, StepError};
use jackal_core::layout::Layout;
use jackal_core::package::images::{ImageCollector, ImageError, ImageOptions};
use jackal_core::payload::SourceImage;
use jackal_core::progress::Silent;
use jackal_core::registry::{Access, Categorize, DockerConfig, ErrorCategory};
use jackal_core::transform::image::ImageReference;
use jackal_crds::state::JackalState;

/// Why the copy of the registry image could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// Pulling it from the registry failed.
    #[error("failed to copy the registry image {image} into the cache {path}: {source}")]
    Pull {
        /// The image.
        image: String,
        /// The cache.
        path: PathBuf,
        /// Why.
        source: ImageError,
    },
    /// Writing the cache failed.
    #[error("failed to write the cache {path}: {source}")]
    Write {
        /// The cache.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The registry could not be reached.
    #[error(transparent)]
    Step(#[from] StepError),
}

impl Categorize for KeepError {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Pull { source, .. } => source.category(),
            Self::Write { .. } => ErrorCategory::Io,
            Self::Step(error) => error.category(),
        }
    }
}

/// The copy of the registry's own image in the operator's cache.
pub struct SeedCache {
    root: PathBuf,
}

impl SeedCache {
    /// The cache under `cache_dir`.
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            root: cache_dir.join("seed"),
        }
    }

    /// Whether the cache holds `image` (`docker.io/library/registry:3.1.2`).
    pub fn holds(&self, image: &str) -> bool {
        Layout::new(&self.root).find(image).is_ok()
    }

    /// Copies `image` for `architecture` out of the registry (reached as `bootstrap` reaches it)
    /// into the cache, replacing what was there only once the copy is complete.
    pub async fn keep(
        &self,
        bootstrap: &Bootstrap,
        state: &JackalState,
        image: &str,
        architecture: &str,
    ) -> Result<(), KeepError> {
        let endpoint = bootstrap.registry_endpoint().await?;
        let registry = &state.registry;
        let host = ImageReference::parse(image)
            .map(|reference| reference.registry)
            .map_err(|error| StepError::Invalid(error.to_string()))?;
        let options = ImageOptions {
            architecture: architecture.to_owned(),
            registry_overrides: vec![(host.clone(), format!("{endpoint}/{host}"))],
            access: Access {
                credentials: DockerConfig::with_basic(
                    &endpoint,
                    &registry.pull_username,
                    registry.pull_password.expose(),
                ),
                insecure: vec![endpoint.clone()],
            },
        };
        let partial = self.root.with_extension("partial");
        let write = |source| KeepError::Write {
            path: partial.clone(),
            source,
        };
        let _ = std::fs::remove_dir_all(&partial);
        let pull = |source| KeepError::Pull {
            image: image.to_owned(),
            path: self.root.clone(),
            source,
        };
        let mut collector = ImageCollector::new(&partial, options).map_err(pull)?;
        collector
            .pull_all(&[image.to_owned()], &Silent)
            .await
            .map_err(pull)?;
        collector.finish().map_err(pull)?;
        let _ = std::fs::remove_dir_all(&self.root);
        std::fs::rename(&partial, &self.root).map_err(write)?;
        Ok(())
    }

    /// Pushes the cached `image` into the running registry (which lost it with its emptyDir).
    pub async fn refill(
        &self,
        bootstrap: &Bootstrap,
        state: &JackalState,
        image: &str,
    ) -> Result<(), StepError> {
        bootstrap
            .push_package_images(state, &Layout::new(&self.root), &[image.to_owned()])
            .await
            .map(drop)
    }

    /// Seeds the registry again from the cached `image`: the whole injection, then cleanup.
    pub async fn reseed(
        &self,
        bootstrap: &mut Bootstrap,
        state: &JackalState,
        image: &str,
    ) -> Result<(), StepError> {
        bootstrap.seed_images = vec![SourceImage {
            layout: Layout::new(&self.root),
            reference: image.to_owned(),
        }];
        bootstrap.registry_image = image.to_owned();
        let payload = bootstrap.write_payload().await?;
        let seed = bootstrap.start_injector(&payload).await?;
        bootstrap.start_registry(state, &seed.image(image)).await?;
        bootstrap.push_images(state, &seed.endpoint).await?;
        bootstrap.self_host_registry(state, Some(&seed.endpoint)).await?;
        bootstrap.clean_up().await
    }
}
