//! Just enough HTTP/1.1 for a registry: reading a request head (bounded), and writing a response
//! whose body is either a few bytes or a range of the payload sent straight from the chunk files.

use std::io::{self, BufRead, Read, Write};

/// Longest request head accepted (request line plus headers).
const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// `Range` header, if any.
    pub range: Option<String>,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
    /// Whether the request announces a body (which is never read: such requests are refused).
    pub has_body: bool,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection before sending anything.
    Closed,
    /// The request is malformed or too large.
    Malformed(&'static str),
    /// The socket failed (including read timeouts).
    Io,
}

/// Reads one request head.
pub fn read_request(reader: &mut impl BufRead) -> Result<Request, ReadError> {
    let mut line = Vec::new();
    let mut total = 0;
    let mut next_line = |line: &mut Vec<u8>| -> Result<usize, ReadError> {
        line.clear();
        let read = reader
            .by_ref()
            .take((MAX_HEAD - total) as u64 + 1)
            .read_until(b'\n', line)
            .map_err(|_| ReadError::Io)?;
        total += read;
        if total > MAX_HEAD {
            return Err(ReadError::Malformed("request head too large"));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        Ok(read)
    };
    if next_line(&mut line)? == 0 {
        return Err(ReadError::Closed);
    }
    let request_line =
        String::from_utf8(line.clone()).map_err(|_| ReadError::Malformed("request line is not text"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Malformed("unsupported HTTP version"));
    }
    let mut request = Request {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or_default().to_owned(),
        keep_alive: version == "HTTP/1.1",
        ..Request::default()
    };
    loop {
        if next_line(&mut line)? == 0 {
            return Err(ReadError::Malformed("connection closed inside the request head"));
        }
        if line.is_empty() {
            return Ok(request);
        }
        let header = String::from_utf8_lossy(&line);
        let Some((name, value)) = header.split_once(':') else {
            return Err(ReadError::Malformed("malformed header"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "range" => request.range = Some(value.to_owned()),
            "connection" if value.eq_ignore_ascii_case("close") => request.keep_alive = false,
            "connection" if value.eq_ignore_ascii_case("keep-alive") => request.keep_alive = true,
            "content-length" => request.has_body |= value != "0",
            "transfer-encoding" => request.has_body = true,
            _ => {}
        }
    }
}

/// What a response carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// Bytes built in memory (JSON).
    Bytes(Vec<u8>),
    /// A range of the payload: `offset` and `length`.
    Payload(u64, u64),
}

/// A response ready to be written.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(&'static str, String)>,
    /// The body (omitted on the wire for HEAD, but its length is still announced).
    pub body: Body,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: String) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: Body::Bytes(body.into_bytes()),
        }
    }

    /// Length of the body.
    pub fn length(&self) -> u64 {
        match &self.body {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::Payload(_, length) => *length,
        }
    }

    /// Writes the status line and headers. Every answer names the API version, as distribution
    /// does: clients probing `/v2/` check it to know they face a registry.
    pub fn write_head(&self, out: &mut impl Write, keep_alive: bool) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nDocker-Distribution-Api-Version: registry/2.0\r\n",
            self.status,
            reason(self.status)
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n", self.length()));
        head.push_str(if keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        out.write_all(head.as_bytes())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The single byte range `header` asks for within `size` bytes: `Ok(None)` for the whole body,
/// `Err(())` when it cannot be satisfied. Multiple ranges are answered with the whole body.
pub fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let suffix: u64 = suffix.parse().map_err(|_| ())?;
            if suffix == 0 {
                return Err(());
            }
            (size.saturating_sub(suffix), size.saturating_sub(1))
        }
        (start, "") => (start.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (start, end) => (
            start.parse().map_err(|_| ())?,
            end.parse::<u64>().map_err(|_| ())?.min(size.saturating_sub(1)),
        ),
    };
    if start > end || start >= size {
        return Err(());
    }
    Ok(Some((start, end - start + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Request, ReadError> {
        read_request(&mut text.as_bytes())
    }

    #[test]
    fn request_heads_are_parsed() {
        let request =
            read("GET /v2/a/blobs/sha256:x?ns=docker.io HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\r\n")
                .unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/v2/a/blobs/sha256:x");
        assert_eq!(request.range.as_deref(), Some("bytes=0-9"));
        assert!(request.keep_alive && !request.has_body);

        let request = read("PUT /v2/a/manifests/t HTTP/1.0\r\nContent-Length: 10\r\n\r\n").unwrap();
        assert!(!request.keep_alive && request.has_body);
        let request = read("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!request.keep_alive);
    }

    #[test]
    fn bad_heads_are_refused() {
        assert!(matches!(read(""), Err(ReadError::Closed)));
        assert!(matches!(read("GARBAGE\r\n\r\n"), Err(ReadError::Malformed(_))));
        assert!(matches!(
            read("GET / SPDY/3\r\n\r\n"),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            read("GET / HTTP/1.1\r\nno colon\r\n\r\n"),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            read("GET / HTTP/1.1\r\nHost: h\r\n"),
            Err(ReadError::Malformed(_))
        ));
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(
            read(&huge),
            Err(ReadError::Malformed("request head too large"))
        ));
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 10))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 10))));
        assert_eq!(parse_range("bytes=50-1000", 100), Ok(Some((50, 50))));
        assert_eq!(parse_range("bytes=0-0,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-5", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=x-1", 100), Err(()));
    }

    #[test]
    fn heads_announce_length_and_connection() {
        let mut out = Vec::new();
        Response::json(404, "{}".into())
            .write_head(&mut out, false)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }
}
