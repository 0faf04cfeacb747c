//! The committed samples in `config/samples/` are valid, and each one in `config/samples/invalid/` is
//! refused with the messages its `# expect:` lines list.

use jackal_tests::{Cluster, repository_root};

use crate::exclusive_init;

#[tokio::test]
async fn the_samples_are_accepted() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let _singleton = exclusive_init(&cluster.client).await?;
    let namespace = cluster.namespace("samples").await?;
    let samples = repository_root().join("config/samples");
    let output = cluster.kubectl_ok(&[
        "apply",
        "--dry-run=server",
        "-n",
        &namespace.name,
        "-f",
        &samples.to_string_lossy(),
    ])?;
    assert!(
        output.contains("jackalinit.jackal.dev/jackal created (server dry run)"),
        "{output}"
    );
    assert!(
        output.contains("jackalpackage.jackal.dev/podinfo created (server dry run)"),
        "{output}"
    );
    Ok(())
}

#[tokio::test]
async fn the_invalid_samples_are_refused_naming_the_field() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let _singleton = exclusive_init(&cluster.client).await?;
    let namespace = cluster.namespace("invalid-samples").await?;
    let mut checked = 0;
    for entry in std::fs::read_dir(repository_root().join("config/samples/invalid"))? {
        let path = entry?.path();
        let expected: Vec<String> = std::fs::read_to_string(&path)?
            .lines()
            .filter_map(|line| line.strip_prefix("# expect: ").map(str::to_owned))
            .collect();
        assert!(!expected.is_empty(), "{} has no `# expect:` line", path.display());
        let output = cluster.kubectl_output(&[
            "apply",
            "--dry-run=server",
            "-n",
            &namespace.name,
            "-f",
            &path.to_string_lossy(),
        ])?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{} was accepted", path.display());
        for message in expected {
            assert!(
                stderr.contains(&message),
                "{}: {message:?} not in: {stderr}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} invalid samples found");
    Ok(())
}
