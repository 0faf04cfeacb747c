//! Test images written as an OCI layout, in the shapes registries and clients must handle: a
//! multi-layer OCI image, a multi-platform index, and a Docker-typed (schema 2) image. Layers are
//! real (uncompressed) tar files with pseudo-random content, so runtimes can unpack them, and the
//! content is derived from a seed, so the same call always gives the same digests.

use std::path::Path;

use jackal_core::layout::{Descriptor, Layout, LayoutWriter};
use jackal_core::oci::Digest;
use jackal_core::oci::media_type::{
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
};
use serde_json::json;

/// One image of the test layout.
#[derive(Clone, Debug)]
pub struct TestImage {
    /// Full reference, as annotated in the layout.
    pub reference: String,
    /// Digest of its top manifest (or index).
    pub digest: Digest,
    /// Media type of its top manifest (or index).
    pub media_type: String,
    /// Every blob it reaches (manifests included).
    pub blobs: Vec<Descriptor>,
}

/// Deterministic pseudo-random bytes (xorshift), so no randomness crate is needed.
pub fn pseudo_random(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(length + 8);
    while bytes.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(length);
    bytes
}

/// A tar holding one file of `size` pseudo-random bytes.
fn layer_tar(seed: u64, size: usize) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(
        &mut header,
        format!("data/layer-{seed}.bin"),
        pseudo_random(seed, size).as_slice(),
    )?;
    Ok(builder.into_inner()?)
}

fn image(
    writer: &LayoutWriter,
    types: (&str, &str, &str),
    architecture: &str,
    layers: &[(u64, usize)],
) -> anyhow::Result<Descriptor> {
    let (manifest_type, config_type, layer_type) = types;
    let mut descriptors = Vec::new();
    for (seed, size) in layers {
        descriptors.push(writer.write_blob(layer_type, &layer_tar(*seed, *size)?)?);
    }
    let diff_ids: Vec<&str> = descriptors.iter().map(|d| d.digest.as_str()).collect();
    let config = json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": ["/data"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = writer.write_blob(config_type, &serde_json::to_vec(&config)?)?;
    let manifest =
        json!({"schemaVersion": 2, "mediaType": manifest_type, "config": config, "layers": descriptors});
    Ok(writer.write_blob(manifest_type, &serde_json::to_vec(&manifest)?)?)
}

/// Writes the three test images into a layout at `root`.
pub fn write_test_layout(root: &Path) -> anyhow::Result<(Layout, Vec<TestImage>)> {
    let mut writer = LayoutWriter::create(root)?;
    let oci = (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER);
    let mut tops = Vec::new();

    let multilayer = image(&writer, oci, "amd64", &[(1, 300_000), (2, 1_000), (3, 2_000_000)])?;
    tops.push(("docker.io/jackaldev/multilayer:1.0", multilayer));

    let amd64 = image(&writer, oci, "amd64", &[(4, 100_000)])?;
    let arm64 = image(&writer, oci, "arm64", &[(5, 100_000)])?;
    let platform = |descriptor: &Descriptor, architecture: &str| {
        let mut descriptor = descriptor.clone();
        descriptor.platform = Some(json!({"architecture": architecture, "os": "linux"}));
        descriptor
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [platform(&amd64, "amd64"), platform(&arm64, "arm64")],
    });
    let index = writer.write_blob(OCI_INDEX, &serde_json::to_vec(&index)?)?;
    tops.push(("docker.io/jackaldev/multiarch:1.0", index));

    let docker = image(
        &writer,
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
        "amd64",
        &[(6, 50_000), (7, 70_000)],
    )?;
    tops.push(("quay.io/jackaldev/dockertyped:1.0", docker));

    for (reference, descriptor) in &tops {
        writer.add_to_index(descriptor.clone(), Some(reference));
    }
    let layout = writer.finish()?;
    let mut images = Vec::new();
    for (reference, descriptor) in tops {
        images.push(TestImage {
            reference: reference.to_owned(),
            digest: descriptor.digest.clone(),
            media_type: descriptor.media_type.clone(),
            blobs: layout.reachable(&descriptor)?,
        });
    }
    Ok((layout, images))
}
