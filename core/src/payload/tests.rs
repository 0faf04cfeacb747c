use std::io::Read;

use super::*;
use crate::layout::LayoutWriter;

use crate::oci::media_type::OCI_LAYER_GZIP as LAYER;

fn temporary(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("jackal-payload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

/// A layout with two images sharing one layer.
fn layout(root: &Path) -> Layout {
    let mut writer = LayoutWriter::create(root).unwrap();
    let shared = writer.write_blob(LAYER, &[1u8; 5000]).unwrap();
    for (name, own) in [("web", 2u8), ("api", 3u8)] {
        let own = writer.write_blob(LAYER, &vec![own; 3000]).unwrap();
        let config = writer
            .write_blob(crate::oci::media_type::OCI_CONFIG, name.as_bytes())
            .unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::oci::media_type::OCI_MANIFEST,
            "config": config,
            "layers": [shared, own],
        });
        let manifest = writer
            .write_blob(
                crate::oci::media_type::OCI_MANIFEST,
                &serde_json::to_vec(&manifest).unwrap(),
            )
            .unwrap();
        writer.add_to_index(manifest, Some(&format!("docker.io/jackaldev/{name}:1.0")));
    }
    writer.finish().unwrap()
}

fn images(layout: &Layout) -> Vec<SourceImage> {
    ["docker.io/jackaldev/web:1.0", "docker.io/jackaldev/api:1.0"]
        .into_iter()
        .map(|reference| SourceImage {
            layout: layout.clone(),
            reference: reference.into(),
        })
        .collect()
}

fn collect(images: &[SourceImage], chunk_size: usize) -> (Summary, Vec<Vec<u8>>) {
    let mut chunks = Vec::new();
    let summary = build(images, chunk_size, |index, bytes| {
        assert_eq!(index, chunks.len());
        chunks.push(bytes.to_vec());
        Ok(())
    })
    .unwrap();
    (summary, chunks)
}

#[test]
fn the_payload_is_a_deterministic_deduplicated_layout_in_chunks() {
    let root = temporary("layout");
    let layout = layout(&root);
    let (summary, chunks) = collect(&images(&layout), 1024);

    assert!(chunks[..chunks.len() - 1].iter().all(|chunk| chunk.len() == 1024));
    let archive: Vec<u8> = chunks.concat();
    assert_eq!(summary.size, archive.len() as u64);
    assert_eq!(summary.chunks, chunks.len());
    assert_eq!(summary.digest, Digest::of(&archive));
    // Shared layer once: 1 shared + 2 own layers + 2 configs + 2 manifests.
    assert_eq!(summary.blobs, 7);

    let mut names = Vec::new();
    let mut index = String::new();
    for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
        assert_eq!(entry.header().mtime().unwrap(), 0);
        if name == "index.json" {
            entry.read_to_string(&mut index).unwrap();
        }
        names.push(name);
    }
    assert_eq!(&names[..2], ["oci-layout", "index.json"]);
    assert_eq!(names.len(), 2 + 7);
    assert!(
        index.contains(r#""org.opencontainers.image.ref.name":"docker.io/jackaldev/web:1.0""#),
        "{index}"
    );

    assert_eq!(
        collect(&images(&layout), 1024).0,
        summary,
        "the same images give the same payload"
    );
    assert_eq!(
        collect(&images(&layout), 4096).0.digest,
        summary.digest,
        "chunking does not change the digest"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn bad_sources_are_refused_naming_the_culprit() {
    let root = temporary("bad");
    let layout = layout(&root);
    let missing = [SourceImage {
        layout: layout.clone(),
        reference: "docker.io/jackaldev/nope:1.0".into(),
    }];
    let error = build(&missing, 1024, |_, _| Ok(())).unwrap_err().to_string();
    assert!(
        error.contains("no image \"docker.io/jackaldev/nope:1.0\""),
        "{error}"
    );

    assert!(matches!(
        build(&images(&layout), 100, |_, _| Ok(())),
        Err(PayloadError::ChunkSize(100))
    ));
    assert!(matches!(
        build(&[], 1024, |_, _| Ok(())),
        Err(PayloadError::Empty)
    ));

    // Corrupt one layer on disk: the payload is refused, naming that blob, and nothing is left.
    let layer = layout.blob_path(&Digest::of(&[2u8; 3000]));
    std::fs::write(&layer, [9u8; 3000]).unwrap();
    let output = root.join("chunks");
    let error = write_chunks(&images(&layout), 1024, &output)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("is corrupt") && error.contains(&layer.display().to_string()),
        "{error}"
    );
    assert!(!output.exists() && !output.with_extension("partial").exists());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn chunks_are_written_as_numbered_files() {
    let root = temporary("files");
    let layout = layout(&root);
    let output = root.join("chunks");
    let summary = write_chunks(&images(&layout), 2048, &output).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&output)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), summary.chunks);
    assert_eq!(files[0], "payload-00000");
    assert_eq!(chunk_name(12345), "payload-12345");
    std::fs::remove_dir_all(root).unwrap();
}
