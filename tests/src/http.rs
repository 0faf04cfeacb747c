//! A minimal HTTP/1.1 GET over a plain TCP socket, for checking what a NodePort or a registry on
//! loopback answers from the host, without pulling an HTTP client into the test crate.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status code and body (headers dropped).
#[derive(Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

/// `GET http://{address}{path}` with the given extra headers; the connection closes after one request.
pub async fn get(address: &str, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Response> {
    let exchange = async {
        let mut stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("failed to connect to {address}"))?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse(&raw)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .with_context(|| format!("GET http://{address}{path} timed out"))?
}

fn parse(raw: &[u8]) -> anyhow::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("response without a header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("response without a status code")?;
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        bail!("chunked responses are not supported by this helper");
    }
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}
