//! The locally built images are reproducible: building them again from the same binaries gives
//! the same digests as the images the cluster was started with.

use jackal_tests::{Scratch, testbed_dir};

#[test]
fn local_images_build_with_stable_digests() -> anyhow::Result<()> {
    let scratch = Scratch::new("images-again")?;
    let bin = testbed_dir().join("bin");
    let built = std::process::Command::new(bin.join("mkimages"))
        .args(["build", "-bin"])
        .arg(&bin)
        .arg("-out")
        .arg(scratch.path())
        .output()?;
    anyhow::ensure!(
        built.status.success(),
        "mkimages build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let again = std::fs::read_to_string(scratch.path().join("images.txt"))?;
    let original = std::fs::read_to_string(testbed_dir().join("images/images.txt"))?;
    assert_eq!(
        again, original,
        "the same inputs give the same references and digests"
    );
    assert_eq!(
        original.lines().count(),
        3,
        "pause, demo-web and registry: {original}"
    );
    Ok(())
}
