//! The read-only OCI distribution API over the payload: routing and every answer, as a pure
//! function from a request head to a response (the server only moves bytes).
//!
//! `GET /v2/`, `GET|HEAD /v2/<name>/manifests/<tag|digest>`, `GET|HEAD /v2/<name>/blobs/<digest>`
//! (with `Range`), `GET /v2/<name>/tags/list`, `GET /v2/_catalog`. Writes get 405 `UNSUPPORTED`;
//! unknown names, manifests and blobs get the spec's 404 error bodies. Payload bytes are answered
//! only while the chunks holding them are unchanged since verification (500 otherwise).

use crate::chunks::Chunks;
use crate::http::{Body, Request, Response, parse_range};
use crate::layout::Payload;

/// The seed registry: the payload's chunks and the images they hold.
pub struct Registry {
    /// Where blob bytes are read from.
    pub chunks: Chunks,
    payload: Payload,
}

impl Registry {
    /// A registry over a verified payload.
    pub fn new(chunks: Chunks, payload: Payload) -> Self {
        Self { chunks, payload }
    }

    /// Answers one request.
    pub fn handle(&self, request: &Request) -> Response {
        let response = self.route(request);
        if let Body::Payload(offset, length) = response.body
            && let Err(failure) = self.chunks.check_range(offset, length)
        {
            eprintln!("jackal-injector: refusing {}: {failure}", request.path);
            return error(500, "UNKNOWN", "a payload chunk changed after verification");
        }
        response
    }

    fn route(&self, request: &Request) -> Response {
        let read = matches!(request.method.as_str(), "GET" | "HEAD");
        let Some(route) = request.path.strip_prefix("/v2/") else {
            return error(404, "NOT_FOUND", "not a registry API path");
        };
        if !read {
            let mut response = error(405, "UNSUPPORTED", "the seed registry is read-only");
            response.headers.push(("Allow", "GET, HEAD".into()));
            return response;
        }
        if route.is_empty() {
            return Response::json(200, "{}".into());
        }
        if route == "_catalog" {
            let names: Vec<&str> = self.payload.repository_names().collect();
            return Response::json(200, serde_json::json!({ "repositories": names }).to_string());
        }
        if let Some(name) = route.strip_suffix("/tags/list") {
            return self.tags(name);
        }
        if let Some((name, reference)) = route.rsplit_once("/manifests/") {
            return self.manifest(name, reference);
        }
        if let Some((name, digest)) = route.rsplit_once("/blobs/") {
            return self.blob(name, digest, request.range.as_deref());
        }
        error(404, "NOT_FOUND", "unknown registry API path")
    }

    fn tags(&self, name: &str) -> Response {
        let Some(repository) = self.payload.repository(name) else {
            return error(404, "NAME_UNKNOWN", "repository name not known to registry");
        };
        let tags: Vec<&String> = repository.tags.keys().collect();
        Response::json(200, serde_json::json!({ "name": name, "tags": tags }).to_string())
    }

    fn manifest(&self, name: &str, reference: &str) -> Response {
        let Some(repository) = self.payload.repository(name) else {
            return error(404, "NAME_UNKNOWN", "repository name not known to registry");
        };
        let digest = if reference.starts_with("sha256:") {
            Some(reference).filter(|digest| repository.blobs.contains(*digest))
        } else {
            repository.tags.get(reference).map(String::as_str)
        };
        let found = digest.and_then(|digest| {
            let media_type = self.payload.manifest_media_type(digest)?;
            Some((digest, media_type, self.payload.blob(digest)?))
        });
        let Some((digest, media_type, span)) = found else {
            return error(404, "MANIFEST_UNKNOWN", "manifest unknown to registry");
        };
        Response {
            status: 200,
            headers: vec![
                ("Content-Type", media_type.to_owned()),
                ("Docker-Content-Digest", digest.to_owned()),
                ("ETag", format!("\"{digest}\"")),
            ],
            body: Body::Payload(span.offset, span.length),
        }
    }

    fn blob(&self, name: &str, digest: &str, range: Option<&str>) -> Response {
        let Some(repository) = self.payload.repository(name) else {
            return error(404, "NAME_UNKNOWN", "repository name not known to registry");
        };
        if !is_digest(digest) {
            return error(
                400,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
            );
        }
        let span = Some(digest)
            .filter(|digest| repository.blobs.contains(*digest))
            .and_then(|d| self.payload.blob(d));
        let Some(span) = span else {
            return error(404, "BLOB_UNKNOWN", "blob unknown to registry");
        };
        let mut headers = vec![
            ("Content-Type", "application/octet-stream".to_owned()),
            ("Docker-Content-Digest", digest.to_owned()),
            ("ETag", format!("\"{digest}\"")),
            ("Accept-Ranges", "bytes".to_owned()),
            ("Cache-Control", "max-age=31536000".to_owned()),
        ];
        match range.map(|range| parse_range(range, span.length)) {
            None | Some(Ok(None)) => Response {
                status: 200,
                headers,
                body: Body::Payload(span.offset, span.length),
            },
            Some(Ok(Some((start, length)))) => {
                headers.push((
                    "Content-Range",
                    format!("bytes {start}-{}/{}", start + length - 1, span.length),
                ));
                Response {
                    status: 206,
                    headers,
                    body: Body::Payload(span.offset + start, length),
                }
            }
            Some(Err(())) => {
                let mut response = error(416, "BLOB_UNKNOWN", "requested range not satisfiable");
                response
                    .headers
                    .push(("Content-Range", format!("bytes */{}", span.length)));
                response
            }
        }
    }
}

fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// An error in the distribution spec's JSON form.
fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        format!("{{\"errors\":[{{\"code\":\"{code}\",\"message\":\"{message}\"}}]}}"),
    )
}
