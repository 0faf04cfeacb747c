//! The distribution API details clients rely on: media types and digests on manifests (GET and
//! HEAD), the API version header on every answer, ranges on blobs, tag and catalog listings, spec
//! error bodies, refused writes, fast refusal of TLS, persistent connections, only verified bytes
//! served after chunk files change on disk, and a clean exit on SIGTERM.

use std::time::Duration;

use jackal_tests::http::{self, Response};
use jackal_tests::injector::Injector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Fixture;

const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

fn error_code(response: &Response) -> String {
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    body["errors"][0]["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn manifests_are_served_with_their_media_type_and_digest() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-manifests")?;
    let injector = Injector::start(&fixture.chunks(), fixture.summary.digest.as_str()).await?;
    let address = injector.address.as_str();

    let base = http::get(address, "/v2/", &[]).await?;
    assert_eq!((base.status, base.text().as_str()), (200, "{}"));
    // Clients (docker, containerd) check this header on `/v2/` to know they face a registry.
    assert_eq!(base.header(API_VERSION.0), Some(API_VERSION.1));

    for image in &fixture.images {
        let (_, path) = image.reference.split_once('/').unwrap_or_default();
        let (name, tag) = path.rsplit_once(':').unwrap_or_default();
        for (method, by) in [("HEAD", tag), ("GET", tag), ("GET", image.digest.as_str())] {
            let response =
                http::request(method, address, &format!("/v2/{name}/manifests/{by}"), &[], b"").await?;
            assert_eq!(response.status, 200, "{method} {name}:{by}");
            assert_eq!(
                response.header("content-type"),
                Some(image.media_type.as_str()),
                "{method} {name}:{by}"
            );
            assert_eq!(
                response.header("docker-content-digest"),
                Some(image.digest.as_str())
            );
            let top = image
                .blobs
                .iter()
                .find(|blob| blob.digest == image.digest)
                .map(|blob| blob.size);
            assert_eq!(
                response.header("content-length").and_then(|l| l.parse().ok()),
                top
            );
            assert_eq!(response.body.is_empty(), method == "HEAD", "{method} body");
            assert_eq!(response.header(API_VERSION.0), Some(API_VERSION.1));
        }
        // Also under the registry host as first path segment.
        let full = image
            .reference
            .rsplit_once(':')
            .map(|(name, _)| name)
            .unwrap_or_default();
        let response = http::get(address, &format!("/v2/{full}/manifests/{}", image.digest), &[]).await?;
        assert_eq!(response.status, 200, "{full}");
    }

    // The platform manifests inside the index are served by digest, with their own media type.
    let index = &fixture.images[1];
    for child in index
        .blobs
        .iter()
        .filter(|blob| blob.media_type.ends_with("manifest.v1+json"))
    {
        let response = http::get(
            address,
            &format!("/v2/jackaldev/multiarch/manifests/{}", child.digest),
            &[],
        )
        .await?;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
    }

    let tags = http::get(address, "/v2/jackaldev/multilayer/tags/list", &[]).await?;
    assert_eq!(tags.text(), r#"{"name":"jackaldev/multilayer","tags":["1.0"]}"#);
    let catalog = http::get(address, "/v2/_catalog", &[]).await?.text();
    assert!(
        catalog.contains(r#""jackaldev/dockertyped""#)
            && catalog.contains(r#""quay.io/jackaldev/dockertyped""#),
        "{catalog}"
    );
    Ok(())
}

#[tokio::test]
async fn blobs_are_served_whole_or_in_ranges() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-blobs")?;
    let injector = Injector::start(&fixture.chunks(), fixture.summary.digest.as_str()).await?;
    let address = injector.address.as_str();
    let image = &fixture.images[0];
    // The 2 MB layer spans many 64 KiB chunks.
    let layer = image
        .blobs
        .iter()
        .max_by_key(|blob| blob.size)
        .cloned()
        .expect("the fixture image has blobs");
    let bytes = std::fs::read(
        fixture
            .scratch
            .path()
            .join("layout/blobs/sha256")
            .join(layer.digest.hex()),
    )?;
    let path = format!("/v2/jackaldev/multilayer/blobs/{}", layer.digest);

    let whole = http::get(address, &path, &[]).await?;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, bytes);
    assert_eq!(whole.header("docker-content-digest"), Some(layer.digest.as_str()));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header(API_VERSION.0), Some(API_VERSION.1));

    let head = http::request("HEAD", address, &path, &[], b"").await?;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(
        head.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );

    for (range, start, end) in [
        ("bytes=65530-131080", 65_530, 131_081),
        ("bytes=-10", bytes.len() - 10, bytes.len()),
        ("bytes=1999990-", 1_999_990, bytes.len()),
    ] {
        let partial = http::get(address, &path, &[("Range", range)]).await?;
        assert_eq!(partial.status, 206, "{range}");
        assert_eq!(partial.body, bytes[start..end], "{range}");
        let expected = format!("bytes {start}-{}/{}", end - 1, bytes.len());
        assert_eq!(
            partial.header("content-range"),
            Some(expected.as_str()),
            "{range}"
        );
    }
    let unsatisfiable = http::get(address, &path, &[("Range", "bytes=99999999-")]).await?;
    assert_eq!(unsatisfiable.status, 416);
    Ok(())
}

#[tokio::test]
async fn unknown_things_get_spec_errors_and_writes_are_refused() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-errors")?;
    let injector = Injector::start(&fixture.chunks(), fixture.summary.digest.as_str()).await?;
    let address = injector.address.as_str();
    let docker_layer = fixture.images[2]
        .blobs
        .iter()
        .find(|blob| blob.media_type.contains("rootfs"))
        .cloned()
        .expect("the fixture image has blobs");
    let zeros = format!("sha256:{}", "0".repeat(64));
    let cases = [
        (
            "/v2/jackaldev/nothing/manifests/1.0".to_owned(),
            404,
            "NAME_UNKNOWN",
        ),
        ("/v2/jackaldev/nothing/tags/list".to_owned(), 404, "NAME_UNKNOWN"),
        (
            "/v2/jackaldev/multilayer/manifests/2.0".to_owned(),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/jackaldev/multilayer/manifests/{zeros}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/jackaldev/multilayer/blobs/{zeros}"),
            404,
            "BLOB_UNKNOWN",
        ),
        // A blob that exists, but belongs to another repository.
        (
            format!("/v2/jackaldev/multilayer/blobs/{}", docker_layer.digest),
            404,
            "BLOB_UNKNOWN",
        ),
        (
            "/v2/jackaldev/multilayer/blobs/sha256:short".to_owned(),
            400,
            "DIGEST_INVALID",
        ),
    ];
    for (path, status, code) in cases {
        let response = http::get(address, &path, &[]).await?;
        assert_eq!(
            (response.status, error_code(&response).as_str()),
            (status, code),
            "GET {path}"
        );
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.header(API_VERSION.0), Some(API_VERSION.1), "GET {path}");
    }
    for (method, path) in [
        ("PUT", "/v2/jackaldev/multilayer/manifests/2.0"),
        ("POST", "/v2/jackaldev/multilayer/blobs/uploads/"),
        ("PATCH", "/v2/jackaldev/multilayer/blobs/uploads/1"),
        ("DELETE", "/v2/jackaldev/multilayer/manifests/1.0"),
    ] {
        let response = http::request(
            method,
            address,
            path,
            &[("Content-Type", "application/json")],
            b"{}",
        )
        .await?;
        assert_eq!(
            (response.status, error_code(&response).as_str()),
            (405, "UNSUPPORTED"),
            "{method} {path}"
        );
    }
    // Nothing changed: the image is still served.
    let still = http::get(address, "/v2/jackaldev/multilayer/manifests/1.0", &[]).await?;
    assert_eq!(still.status, 200);
    Ok(())
}

#[tokio::test]
async fn tls_is_refused_at_once_and_connections_are_reused() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-connections")?;
    let injector = Injector::start(&fixture.chunks(), fixture.summary.digest.as_str()).await?;

    // A TLS ClientHello is answered by closing, not by waiting for a request line.
    let mut tls = tokio::net::TcpStream::connect(&injector.address).await?;
    tls.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])
        .await?;
    let mut buffer = [0u8; 16];
    // (5 s allows for a loaded machine; waiting for a request line would take the 60 s idle timeout.)
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buffer)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "TLS hello answered with {read:?}");

    // Two requests on one connection.
    let mut stream = tokio::net::TcpStream::connect(&injector.address).await?;
    stream.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/_catalog HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(
        text.contains("Connection: keep-alive") && text.contains("repositories"),
        "{text}"
    );
    Ok(())
}

/// The kubelet updates a ConfigMap volume by renaming new files over the old ones: the injector
/// keeps serving the bytes it verified (it holds the chunks open), and a chunk changed in place
/// (which the kubelet never does) makes requests for its bytes fail rather than serve them.
#[tokio::test]
async fn chunks_changed_after_verification_are_never_served() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-swapped")?;
    let chunks = fixture.chunks();
    let injector = Injector::start(&chunks, fixture.summary.digest.as_str()).await?;
    let address = injector.address.as_str();
    let layer = fixture.images[0]
        .blobs
        .iter()
        .max_by_key(|blob| blob.size)
        .cloned()
        .expect("the fixture image has blobs");
    let path = format!("/v2/jackaldev/multilayer/blobs/{}", layer.digest);
    let sha256 = |bytes: &[u8]| -> String {
        use sha2::Digest;
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };

    // Keep a second name for every verified chunk, then swap new files in under every chunk name.
    let held = fixture.scratch.path().join("held");
    std::fs::create_dir_all(&held)?;
    for number in 0..fixture.summary.chunks {
        let name = jackal_core::payload::chunk_name(number);
        std::fs::hard_link(chunks.join(&name), held.join(&name))?;
        let length = std::fs::metadata(chunks.join(&name))?.len();
        let swapped = chunks.join(format!("..{name}.new"));
        std::fs::write(&swapped, vec![0x5a; usize::try_from(length)?])?;
        std::fs::rename(&swapped, chunks.join(&name))?;
    }
    let whole = http::get(address, &path, &[]).await?;
    assert_eq!(whole.status, 200);
    assert_eq!(format!("sha256:{}", sha256(&whole.body)), layer.digest.as_str());
    let manifest = http::get(address, "/v2/jackaldev/multilayer/manifests/1.0", &[]).await?;
    assert_eq!(manifest.status, 200);
    assert_eq!(
        format!("sha256:{}", sha256(&manifest.body)),
        fixture.images[0].digest.as_str()
    );

    // Now change the verified files themselves, in place (same size, one byte flipped). The
    // injector notices by the modification time, which the kernel updates at clock-tick
    // granularity: let a few ticks pass since the chunks were written.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for number in 0..fixture.summary.chunks {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(held.join(jackal_core::payload::chunk_name(number)))?;
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, 0)?;
        file.write_all_at(&[byte[0] ^ 0xff], 0)?;
    }
    for method in ["GET", "HEAD"] {
        let refused = http::request(method, address, &path, &[], b"").await?;
        assert_eq!(refused.status, 500, "{method}");
        assert_ne!(refused.body.get(..16), whole.body.get(..16), "{method}");
    }
    assert!(
        injector.log().contains("changed after it was verified"),
        "{}",
        injector.log()
    );
    Ok(())
}

/// SIGTERM ends the injector at once and cleanly (exit status 0): as PID 1 in a pod, without a
/// handler it would ignore the signal and hold the pod for its whole grace period.
#[tokio::test]
async fn sigterm_stops_the_injector_at_once() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-sigterm")?;
    let mut injector = Injector::start(&fixture.chunks(), fixture.summary.digest.as_str()).await?;
    let status = injector.terminate(Duration::from_secs(10))?;
    assert!(status.success(), "exited with {status}: {}", injector.log());
    assert!(
        injector.log().contains("terminated, exiting"),
        "{}",
        injector.log()
    );
    Ok(())
}
