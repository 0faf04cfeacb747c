//! What a user sees with the real kubectl: printer columns, short names, the `jackal` category and
//! strict field validation.

use std::io::Write;
use std::process::Stdio;

use jackal_crds::JackalPackage;
use jackal_tests::Cluster;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use crate::status::{new_package, ready_status};

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("kubectl-columns").await?;
    let api = Api::<JackalPackage>::namespaced(cluster.client.clone(), &namespace.name);
    api.create(&PostParams::default(), &new_package("podinfo"))
        .await?;
    api.patch_status(
        "podinfo",
        &PatchParams::apply("jackal-operator").force(),
        &Patch::Apply(ready_status(1)),
    )
    .await?;

    let table = cluster.kubectl_ok(&["get", "jackalpackages", "-n", &namespace.name])?;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "PACKAGE", "VERSION", "READY", "STATUS", "AGE"],
        "header of:\n{table}"
    );
    assert_eq!(
        rows[1][..6],
        ["podinfo", "podinfo", "6.4.0", "True", "deployed", "1"],
        "row of:\n{table}"
    );

    let wide = cluster.kubectl_ok(&["get", "jpkg", "-o", "wide", "-n", &namespace.name])?;
    assert!(
        wide.lines().next().unwrap_or_default().contains("SOURCE"),
        "no SOURCE column in:\n{wide}"
    );
    assert!(
        wide.contains("oci://127.0.0.1:31999/packages/podinfo:6.4.0"),
        "no source in:\n{wide}"
    );

    let category = cluster.kubectl_ok(&["get", "jackal", "-n", &namespace.name, "-o", "name"])?;
    assert!(
        category.contains("jackalpackage.jackal.dev/podinfo"),
        "category `jackal` lists:\n{category}"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_apply_refuses_unknown_fields_naming_them() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("kubectl-unknown").await?;
    let manifest = format!(
        "apiVersion: jackal.dev/v1alpha1\nkind: JackalPackage\nmetadata:\n  name: typo\n  namespace: {}\n\
         spec:\n  source:\n    url: oci://127.0.0.1:31999/packages/podinfo:6.4.0\n  compnents: [web]\n",
        namespace.name
    );
    let mut child = cluster
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?
        .write_all(manifest.as_bytes())?;
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "kubectl accepted an unknown field");
    assert!(
        stderr.contains(r#"unknown field "spec.compnents""#),
        "stderr: {stderr}"
    );
    Ok(())
}
