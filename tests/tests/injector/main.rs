//! The real injector binary (static musl build, `injector` profile) on loopback, fed a payload that
//! `jackal-core` built from several images: real clients (skopeo, containerd's ctr) pull every image
//! and the digests match; the protocol details hold; bad payloads are refused with the right message.

mod clients;
mod copy;
mod protocol;
mod refusals;

use jackal_core::payload::{self, SourceImage, Summary};
use jackal_tests::Scratch;
use jackal_tests::images::{TestImage, write_test_layout};

/// Small chunks, so blobs span several of them.
const CHUNK_SIZE: usize = 65_536;

/// A payload of the three test images, written as chunk files.
struct Fixture {
    scratch: Scratch,
    images: Vec<TestImage>,
    summary: Summary,
}

impl Fixture {
    fn new(test: &str) -> anyhow::Result<Self> {
        let scratch = Scratch::new(test)?;
        let (layout, images) = write_test_layout(&scratch.path().join("layout"))?;
        let sources: Vec<SourceImage> = images
            .iter()
            .map(|image| SourceImage {
                layout: layout.clone(),
                reference: image.reference.clone(),
            })
            .collect();
        let summary = payload::write_chunks(&sources, CHUNK_SIZE, &scratch.path().join("chunks"))?;
        Ok(Self {
            scratch,
            images,
            summary,
        })
    }

    fn chunks(&self) -> std::path::PathBuf {
        self.scratch.path().join("chunks")
    }
}
