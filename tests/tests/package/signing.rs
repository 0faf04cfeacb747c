//! Signed packages: a key pair from `tools gen-key`, a signed package verifies with the public key
//! and not with another; a signed package needs a key; a key needs a signature.

use jackal_tests::{Scratch, jackal};

use crate::{create_ok, demo, inspect, stderr};

#[tokio::test]
async fn signed_packages_verify_only_with_their_key() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-signing")?;
    let keys = scratch.path().join("keys");
    let other = scratch.path().join("other");
    for directory in [&keys, &other] {
        let generated = jackal(&[
            "tools",
            "gen-key",
            "--output-dir",
            directory.to_str().unwrap_or_default(),
        ])?;
        assert!(generated.status.success(), "{}", stderr(&generated));
    }
    let again = jackal(&[
        "tools",
        "gen-key",
        "--output-dir",
        keys.to_str().unwrap_or_default(),
    ])?;
    assert!(
        !again.status.success() && stderr(&again).contains("refusing to overwrite"),
        "{}",
        stderr(&again)
    );

    let private = keys.join("jackal.key");
    let public = keys.join("jackal.pub");
    let signed = create_ok(
        &demo(),
        &scratch.path().join("signed"),
        &["--signing-key", private.to_str().unwrap_or_default()],
    )?;
    let path = signed.to_str().unwrap_or_default();

    let ok = jackal(&[
        "package",
        "verify",
        path,
        "--key",
        public.to_str().unwrap_or_default(),
    ])?;
    assert!(
        ok.status.success() && stderr(&ok).contains("signature verified"),
        "{}",
        stderr(&ok)
    );
    let wrong = jackal(&[
        "package",
        "verify",
        path,
        "--key",
        other.join("jackal.pub").to_str().unwrap_or_default(),
    ])?;
    assert!(
        !wrong.status.success() && stderr(&wrong).contains("does not match"),
        "{}",
        stderr(&wrong)
    );
    let keyless = jackal(&["package", "verify", path])?;
    assert!(
        !keyless.status.success() && stderr(&keyless).contains("the package is signed"),
        "{}",
        stderr(&keyless)
    );
    let skipped = jackal(&["package", "verify", path, "--skip-signature"])?;
    assert!(skipped.status.success(), "{}", stderr(&skipped));
    let summary = inspect(&signed)?;
    assert_eq!(summary["signature"], "notChecked");
    assert_eq!(summary["definition"]["build"]["signed"], true);

    let unsigned = create_ok(&demo(), &scratch.path().join("unsigned"), &[])?;
    let needs_signature = jackal(&[
        "package",
        "verify",
        unsigned.to_str().unwrap_or_default(),
        "--key",
        public.to_str().unwrap_or_default(),
    ])?;
    assert!(
        !needs_signature.status.success() && stderr(&needs_signature).contains("is not signed"),
        "{}",
        stderr(&needs_signature)
    );
    Ok(())
}
