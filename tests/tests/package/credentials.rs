//! Images from a registry that requires a login: the credentials come from the docker
//! `config.json` (`$DOCKER_CONFIG`), and without them the pull is refused naming the image.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use jackal_tests::faulty_proxy::FaultyProxy;
use jackal_tests::{Scratch, connected_registry, registry, workspace_binary};

use crate::stderr;

const USER: &str = "jackal";
const PASSWORD: &str = "not-a-real-secret-4711";

/// `package create` with `$DOCKER_CONFIG` set to `docker_config`.
fn create_with(directory: &Path, output: &Path, docker_config: &Path) -> anyhow::Result<Output> {
    Ok(Command::new(workspace_binary("kubectl-jackal")?)
        .args(["package", "create"])
        .arg(directory)
        .arg("-o")
        .arg(output)
        .env("DOCKER_CONFIG", docker_config)
        .output()?)
}

// The proxy runs on this runtime while the command blocks a worker: it needs a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_from_a_registry_that_requires_a_login_use_docker_credentials() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-login")?;
    let proxy = FaultyProxy::requiring_basic_auth(&connected_registry(), USER, PASSWORD).await?;
    let image = format!("{}/jackaldev/demo-web:1.0.0", proxy.address);
    let directory = scratch.path().join("definition");
    std::fs::create_dir_all(&directory)?;
    std::fs::write(
        directory.join("jackal.yaml"),
        format!(
            "kind: JackalPackageConfig\nmetadata: {{name: login}}\ncomponents:\n  - name: images\n    required: true\n    images: [\"{image}\"]\n"
        ),
    )?;

    // No credentials: refused, naming the image.
    let anonymous = scratch.path().join("anonymous");
    std::fs::create_dir_all(&anonymous)?;
    let result = create_with(&directory, &scratch.path().join("out-anonymous"), &anonymous)?;
    let message = stderr(&result);
    assert!(!result.status.success() && message.contains(&image), "{message}");
    assert!(proxy.failed() > 0, "the registry asked for a login");

    // Credentials in config.json: pulled, with the registry's digest, and never printed.
    let logged_in = scratch.path().join("logged-in");
    std::fs::create_dir_all(&logged_in)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        logged_in.join("config.json"),
        serde_json::json!({"auths": {proxy.address.clone(): {"auth": auth}}}).to_string(),
    )?;
    let result = create_with(&directory, &scratch.path().join("out"), &logged_in)?;
    let message = stderr(&result);
    assert!(result.status.success(), "{message}");
    assert!(
        !message.contains(PASSWORD) && !message.contains(&auth),
        "credentials printed: {message}"
    );
    let package = std::path::PathBuf::from(String::from_utf8(result.stdout)?.trim());
    let summary = crate::inspect(&package)?;
    let expected =
        registry::manifest_digest(&format!("{}/jackaldev/demo-web:1.0.0", connected_registry())).await?;
    assert_eq!(summary["images"][0]["digest"], expected.as_str(), "{summary}");
    Ok(())
}
