//! Creating, inspecting and verifying the demo package; filters; clear errors for bad input.

use jackal_tests::{Scratch, connected_registry, jackal, registry};

use crate::{create, create_ok, demo, inspect, stderr};

#[tokio::test]
async fn a_package_is_created_inspected_and_verified() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-create")?;
    let package = create_ok(&demo(), scratch.path(), &["--flavor", "full"])?;
    assert_eq!(
        package.file_name().and_then(|n| n.to_str()),
        Some("jackal-package-demo-amd64-1.0.0-full.tar.zst")
    );

    let summary = inspect(&package)?;
    let components: Vec<&str> = summary["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        components,
        ["web", "config", "registry"],
        "the arm64-only component is left out"
    );
    assert_eq!(summary["definition"]["build"]["flavor"], "full");
    assert_eq!(
        summary["definition"]["constants"][0]["value"], "1.0.0",
        "create-time templates are filled"
    );
    assert_eq!(summary["signature"], "unsigned");
    // Every image, with the digest the registry has for it (digests preserved).
    for (reference, repository) in [
        ("docker.io/jackaldev/demo-web:1.0.0", "jackaldev/demo-web:1.0.0"),
        ("docker.io/library/registry:3.1.2", "library/registry:3.1.2"),
    ] {
        let image = summary["images"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|image| image["reference"] == reference);
        let image = image.ok_or_else(|| anyhow::anyhow!("{reference} missing from {summary}"))?;
        let expected = registry::manifest_digest(&format!("{}/{repository}", connected_registry())).await?;
        assert_eq!(image["digest"], expected.as_str(), "{reference}");
        assert!(
            image["size"].as_u64().unwrap_or(0) > 1_000_000,
            "{reference} size"
        );
    }

    let verified = jackal(&["package", "verify", package.to_str().unwrap_or_default()])?;
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stderr(&verified).contains("files match their checksums"));

    // The component archives hold what the definition named.
    let unpacked = scratch.path().join("unpacked");
    jackal_core::package::archive::extract(&package, &unpacked, &Default::default())?;
    let web = unpacked.join("web");
    jackal_core::package::archive::extract(&unpacked.join("components/web.tar"), &web, &Default::default())?;
    assert!(web.join("charts/demo-web.tgz").exists() && web.join("values/demo-web-0.yaml").exists());
    let config = unpacked.join("config");
    jackal_core::package::archive::extract(
        &unpacked.join("components/config.tar"),
        &config,
        &Default::default(),
    )?;
    assert_eq!(
        std::fs::read_to_string(config.join("files/0/motd.txt"))?,
        "Welcome to the Jackal demo.\n"
    );
    assert!(
        std::fs::read_to_string(config.join("manifests/demo-config-0.yaml"))?
            .contains("###JACKAL_VAR_MESSAGE###"),
        "deploy-time markers stay"
    );

    // Creating the same package again gives the same content.
    let again = Scratch::new("package-create-again")?;
    let second = create_ok(&demo(), again.path(), &["--flavor", "full"])?;
    let second_summary = inspect(&second)?;
    assert_eq!(second_summary["images"], summary["images"]);
    Ok(())
}

#[tokio::test]
async fn flavors_architectures_and_missing_images() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-filters")?;
    let package = create_ok(&demo(), scratch.path(), &[])?;
    let components: Vec<String> = inspect(&package)?["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        components,
        ["web", "config"],
        "no flavor: the flavored component is left out"
    );

    // For arm64 the arm-only component comes in, and its image does not exist anywhere.
    let arm = Scratch::new("package-arm")?;
    let result = create(&demo(), arm.path(), &["--architecture", "arm64"])?;
    assert!(!result.status.success());
    let message = stderr(&result);
    assert!(
        message.contains("image docker.io/library/never:1") && message.contains("manifest unknown"),
        "{message}"
    );
    let left: Vec<_> = std::fs::read_dir(arm.path())?.collect();
    assert!(left.is_empty(), "a failed create left {left:?} behind");
    Ok(())
}

#[tokio::test]
async fn bad_definitions_are_refused_with_file_line_and_field() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-bad")?;
    let output = scratch.path().join("out");

    let missing_set = jackal(&[
        "package",
        "create",
        demo().to_str().unwrap_or_default(),
        "-o",
        output.to_str().unwrap_or_default(),
    ])?;
    assert!(
        stderr(&missing_set)
            .contains("uses ###JACKAL_PKG_TMPL_VERSION### but no value was given (--set VERSION=VALUE)"),
        "{}",
        stderr(&missing_set)
    );

    let typo = scratch.path().join("typo");
    std::fs::create_dir_all(&typo)?;
    std::fs::write(
        typo.join("jackal.yaml"),
        "kind: JackalPackageConfig\nmetadata:\n  name: typo\ncomponents:\n  - name: web\n    imagez: [nginx]\n",
    )?;
    let result = create(&typo, &output, &[])?;
    let message = stderr(&result);
    assert!(
        !result.status.success()
            && message.contains("line 6")
            && message.contains("unknown field `imagez`")
            && message.contains("typo/jackal.yaml"),
        "{message}"
    );

    let invalid = scratch.path().join("invalid");
    std::fs::create_dir_all(&invalid)?;
    std::fs::write(
        invalid.join("jackal.yaml"),
        "kind: JackalPackageConfig\nmetadata:\n  name: Bad_Name\ncomponents:\n  - name: web\n    charts:\n      - name: c\n        url: https://charts.example.com\n",
    )?;
    let message = stderr(&create(&invalid, &output, &[])?);
    assert!(
        message.contains("invalid/jackal.yaml")
            && message.contains("line 3: metadata.name: must be lowercase")
            && message.contains("line 7: components[0].charts[0].version"),
        "{message}"
    );

    let unsupported = scratch.path().join("unsupported");
    std::fs::create_dir_all(&unsupported)?;
    std::fs::write(
        unsupported.join("jackal.yaml"),
        "kind: JackalPackageConfig\nmetadata:\n  name: git\ncomponents:\n  - name: code\n    repos: [https://github.com/stefanprodan/podinfo.git]\n",
    )?;
    let message = stderr(&create(&unsupported, &output, &[])?);
    assert!(
        message.contains("component code: repos is not supported yet"),
        "{message}"
    );

    let kustomize = scratch.path().join("kustomize");
    std::fs::create_dir_all(&kustomize)?;
    std::fs::write(
        kustomize.join("jackal.yaml"),
        "kind: JackalPackageConfig\nmetadata:\n  name: kustomize\ncomponents:\n  - name: app\n    manifests:\n      - name: app\n        kustomizations: [overlay]\n",
    )?;
    let message = stderr(&create(&kustomize, &output, &[])?);
    assert!(
        message.contains("component app: manifests[].kustomizations is not supported yet")
            && message.contains("render them to files first"),
        "{message}"
    );

    let missing_file = scratch.path().join("missing-file");
    std::fs::create_dir_all(&missing_file)?;
    std::fs::write(
        missing_file.join("jackal.yaml"),
        "kind: JackalPackageConfig\nmetadata:\n  name: files\ncomponents:\n  - name: data\n    files:\n      - {source: nothing.txt, target: /tmp/x}\n",
    )?;
    let message = stderr(&create(&missing_file, &output, &[])?);
    assert!(
        message.contains("component data:") && message.contains("nothing.txt"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-progress")?;

    // Piped: plain lines, every step, no terminal control sequences.
    let piped = create(&demo(), &scratch.path().join("piped"), &[])?;
    let lines = stderr(&piped);
    assert!(piped.status.success(), "create failed:\n{lines}");
    for step in [
        "pulling docker.io/jackaldev/demo-web:1.0.0",
        "computing checksums",
        "writing ",
    ] {
        assert!(lines.contains(step), "no {step:?} line in:\n{lines}");
    }
    assert!(
        !lines.contains('\u{1b}'),
        "escape sequences in piped output:\n{lines}"
    );

    // On a terminal (a pseudo-terminal from util-linux `script`): a bar of bytes moved.
    let command = format!(
        "{} package create {} -o {} --registry-override docker.io={} --set VERSION=1.0.0",
        jackal_tests::workspace_binary("kubectl-jackal")?.display(),
        demo().display(),
        scratch.path().join("terminal").display(),
        connected_registry()
    );
    let transcript = scratch.path().join("transcript");
    let status = std::process::Command::new("script")
        .args(["-qec", &command])
        .arg(&transcript)
        .stdout(std::process::Stdio::null())
        .status()?;
    let drawn = String::from_utf8_lossy(&std::fs::read(&transcript)?).into_owned();
    assert!(status.success(), "create on a terminal failed:\n{drawn}");
    assert!(drawn.contains('\u{1b}'), "no terminal drawing in:\n{drawn}");
    assert!(
        drawn.contains("B / ") && drawn.contains("B/s"),
        "no byte progress bar in:\n{drawn}"
    );
    Ok(())
}

/// Inspect and verify read the package file in one pass and write nothing: with `TMPDIR` pointing
/// at a regular file, any scratch directory would fail to be created.
#[tokio::test]
async fn inspect_and_verify_need_no_scratch_space() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-no-scratch")?;
    let package = create_ok(&demo(), &scratch.path().join("out"), &[])?;
    let not_a_directory = scratch.path().join("not-a-directory");
    std::fs::write(&not_a_directory, "")?;
    for args in [
        vec![
            "package",
            "inspect",
            package.to_str().unwrap_or_default(),
            "-o",
            "json",
        ],
        vec!["package", "verify", package.to_str().unwrap_or_default()],
    ] {
        let output = std::process::Command::new(jackal_tests::workspace_binary("kubectl-jackal")?)
            .args(&args)
            .env("TMPDIR", &not_a_directory)
            .output()?;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    Ok(())
}
