//! Tools for benchmarks and manual experiments, built from the test crate:
//!
//! ```text
//! testkit image --layout DIR --reference REF --layer-size BYTES [--seed N]
//!     add an image with one pseudo-random layer of BYTES (streamed to disk) to an OCI layout
//! testkit payload --layout DIR --reference REF [--reference REF]... --out DIR [--chunk-size BYTES]
//!     build the injector payload of those images into DIR; prints "DIGEST CHUNKS BYTES"
//! ```

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use jackal_core::layout::{Layout, LayoutWriter};
use jackal_core::oci::{Digest, media_type};
use jackal_core::payload::{self, DEFAULT_CHUNK_SIZE, SourceImage};
use jackal_tests::images::pseudo_random;
use sha2::{Digest as _, Sha256};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<String> {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|index| args.get(index + 1))
            .cloned()
    };
    let values = |name: &str| -> Vec<String> {
        args.windows(2)
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].clone())
            .collect()
    };
    let required = |name: &str| value(name).with_context(|| format!("{name} is required"));
    match args.first().map(String::as_str) {
        Some("image") => {
            let layer_size: u64 = required("--layer-size")?.parse()?;
            let seed: u64 = value("--seed").map(|seed| seed.parse()).transpose()?.unwrap_or(1);
            image(
                PathBuf::from(required("--layout")?),
                &required("--reference")?,
                layer_size,
                seed,
            )
        }
        Some("payload") => {
            let layout = Layout::new(required("--layout")?);
            let images: Vec<SourceImage> = values("--reference")
                .into_iter()
                .map(|reference| SourceImage {
                    layout: layout.clone(),
                    reference,
                })
                .collect();
            let chunk_size = value("--chunk-size")
                .map(|size| size.parse())
                .transpose()?
                .unwrap_or(DEFAULT_CHUNK_SIZE);
            let summary = payload::write_chunks(&images, chunk_size, &PathBuf::from(required("--out")?))?;
            println!("{} {} {}", summary.digest, summary.chunks, summary.size);
            Ok(())
        }
        _ => bail!("usage: testkit image|payload ... (see the source's header)"),
    }
}

/// Adds an image whose single layer is `layer_size` pseudo-random bytes, written in 1 MiB pieces.
fn image(root: PathBuf, reference: &str, layer_size: u64, seed: u64) -> anyhow::Result<()> {
    let existing = Layout::new(&root).index().unwrap_or_default();
    let mut writer = LayoutWriter::create(&root)?;
    for descriptor in existing {
        writer.add_to_index(descriptor, None);
    }
    let partial = root.join("blobs/sha256/layer.partial");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut piece = 0u64;
    while written < layer_size {
        let length = (layer_size - written).min(1 << 20) as usize;
        let bytes = pseudo_random(seed.wrapping_mul(1_000_003).wrapping_add(piece), length);
        hasher.update(&bytes);
        file.write_all(&bytes)?;
        written += length as u64;
        piece += 1;
    }
    file.flush()?;
    drop(file);
    let digest = Digest::from_hasher(hasher);
    std::fs::rename(&partial, root.join("blobs/sha256").join(digest.hex()))?;
    let layer = jackal_core::layout::Descriptor::new(media_type::OCI_LAYER, digest, layer_size);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
    });
    let config = writer.write_blob(
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config)?,
    )?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    let manifest = writer.write_blob(
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest)?,
    )?;
    println!("{} {}", manifest.digest, layer.digest);
    writer.add_to_index(manifest, Some(reference));
    writer.finish()?;
    Ok(())
}
