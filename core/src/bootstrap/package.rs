//! The init package as bootstrap reads it: an ordinary package (`kind: JackalInitConfig`) whose
//! `jackal-injector` component carries the injector binary as a file and whose `jackal-registry`
//! component carries the registry image, the one image that travels through ConfigMaps. Every
//! other image of the package is pushed into the registry once it runs.

use std::path::{Path, PathBuf};

use jackal_crds::definition::PackageDefinition;

use crate::layout::Layout;
use crate::package::archive::{self, ArchiveError, Limits};
use crate::package::verify::{VerifyError, VerifyOptions, verify_file};
use crate::package::{COMPONENTS, IMAGES};
use crate::payload::SourceImage;

/// The component holding the injector binary (its first file).
pub const INJECTOR_COMPONENT: &str = "jackal-injector";
/// The component holding the registry image (its first image).
pub const REGISTRY_COMPONENT: &str = "jackal-registry";
/// The component holding the operator image (its first image).
pub const OPERATOR_COMPONENT: &str = "jackal-operator";

/// An unpacked, verified init package.
#[derive(Clone, Debug)]
pub struct InitPackage {
    /// Its definition.
    pub definition: PackageDefinition,
    /// The images of every component.
    pub layout: Layout,
    /// The registry image, as the package names it (`docker.io/library/registry:3.1.2`).
    pub registry_image: String,
    /// The operator image, as the package names it.
    pub operator_image: String,
    /// Every image of the package (the registry's included).
    pub images: Vec<String>,
    /// The injector binary, unpacked.
    pub injector_binary: PathBuf,
}

/// Why an init package cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InitPackageError {
    /// Checksums or signature do not hold.
    #[error("init package {path}: {source}")]
    Verify {
        /// The package.
        path: PathBuf,
        /// Why.
        source: VerifyError,
    },
    /// Unpacking failed.
    #[error("init package {path}: {source}")]
    Unpack {
        /// The package or component archive.
        path: PathBuf,
        /// Why.
        source: ArchiveError,
    },
    /// A component or its content is missing.
    #[error("{path} is not an init package: {reason}")]
    NotInit {
        /// The package.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
}

impl InitPackage {
    /// The images that travel through ConfigMaps: the registry's.
    pub fn seed_images(&self) -> Vec<SourceImage> {
        vec![SourceImage {
            layout: self.layout.clone(),
            reference: self.registry_image.clone(),
        }]
    }

    /// Verifies the package at `path` and unpacks it into `work` (which must not exist).
    pub fn open(path: &Path, work: &Path) -> Result<Self, InitPackageError> {
        let verified = verify_file(path, &VerifyOptions::default(), |_, _| false).map_err(|source| {
            InitPackageError::Verify {
                path: path.to_owned(),
                source,
            }
        })?;
        let definition = verified.verified.definition;
        let not_init = |reason: String| InitPackageError::NotInit {
            path: path.to_owned(),
            reason,
        };
        let component = |name: &str| {
            definition
                .components
                .iter()
                .find(|component| component.name == name)
                .ok_or_else(|| not_init(format!("it has no {name} component")))
        };
        let registry_image = component(REGISTRY_COMPONENT)?
            .images
            .first()
            .cloned()
            .ok_or_else(|| not_init(format!("its {REGISTRY_COMPONENT} component has no image")))?;
        let operator_image = component(OPERATOR_COMPONENT)?
            .images
            .first()
            .cloned()
            .ok_or_else(|| not_init(format!("its {OPERATOR_COMPONENT} component has no image")))?;
        let injector = component(INJECTOR_COMPONENT)?;
        let injector_file = injector
            .files
            .first()
            .ok_or_else(|| not_init(format!("its {INJECTOR_COMPONENT} component has no file")))?;
        archive::extract(path, work, &Limits::default()).map_err(|source| InitPackageError::Unpack {
            path: path.to_owned(),
            source,
        })?;
        let component_archive = work.join(COMPONENTS).join(format!("{INJECTOR_COMPONENT}.tar"));
        let component_directory = work.join(COMPONENTS).join(INJECTOR_COMPONENT);
        archive::extract(&component_archive, &component_directory, &Limits::default()).map_err(|source| {
            InitPackageError::Unpack {
                path: component_archive.clone(),
                source,
            }
        })?;
        // `package create` stores a component's files as files/<index>/<name of the source>.
        let source = injector_file
            .source
            .split('?')
            .next()
            .unwrap_or(&injector_file.source);
        let name = Path::new(source)
            .file_name()
            .map(|name| name.to_owned())
            .ok_or_else(|| not_init(format!("the injector file's source {source:?} names no file")))?;
        let injector_binary = component_directory.join("files/0").join(name);
        if !injector_binary.is_file() {
            return Err(not_init(format!(
                "{} is missing from it",
                injector_binary.display()
            )));
        }
        let images = definition
            .components
            .iter()
            .flat_map(|component| component.images.iter().cloned())
            .collect();
        Ok(Self {
            layout: Layout::new(work.join(IMAGES)),
            definition,
            registry_image,
            operator_image,
            images,
            injector_binary,
        })
    }
}
