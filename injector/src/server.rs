//! The socket side: accept connections, one small thread each (bounded), read requests, write the
//! registry's answers (payload bytes via `sendfile`), log one line per request.

use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::http::{Body, ReadError, Response, read_request};
use crate::registry::Registry;

/// Connections served at once; more are answered 503 and closed.
const MAX_CONNECTIONS: usize = 256;
/// A client that sends nothing for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A client that accepts no bytes for this long is dropped.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Stack of each connection thread: the handlers need very little.
const THREAD_STACK: usize = 128 * 1024;
/// First byte of a TLS ClientHello.
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves `registry` on `address` until the process is killed.
pub fn serve(address: &str, registry: Arc<Registry>) -> Result<(), Error> {
    let listener = TcpListener::bind(address).map_err(|source| Error::Listen {
        address: address.to_owned(),
        source,
    })?;
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| address.to_owned());
    eprintln!("jackal-injector: serving the seed registry on http://{bound}");
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let busy = Response::json(
                503,
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"too many connections"}]}"#.into(),
            );
            let mut stream = stream;
            let _ = send(&registry, &mut stream, &busy, false, false);
            continue;
        }
        let (registry, active) = (Arc::clone(&registry), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .stack_size(THREAD_STACK)
            .spawn(move || {
                connection(&registry, stream);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            eprintln!("jackal-injector: cannot start a connection thread");
        }
    }
    Ok(())
}

fn connection(registry: &Registry, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(STALL_TIMEOUT));
    let _ = stream.set_nodelay(true);
    // A client trying TLS first would otherwise wait for a line that never comes: close at once.
    let mut first = [0u8; 1];
    if matches!(stream.peek(&mut first), Ok(1) if first[0] == TLS_HANDSHAKE) {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let Ok(reader_stream) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader_stream);
    loop {
        let started = Instant::now();
        let request = match read_request(&mut reader) {
            Ok(request) => request,
            Err(ReadError::Closed | ReadError::Io) => return,
            Err(ReadError::Malformed(reason)) => {
                let response = Response::json(
                    400,
                    format!(r#"{{"errors":[{{"code":"UNSUPPORTED","message":"{reason}"}}]}}"#),
                );
                let _ = send(registry, &mut stream, &response, false, false);
                eprintln!("- - 400 ({reason})");
                return;
            }
        };
        let response = registry.handle(&request);
        // A request with a body (a push) is refused without reading it, so the connection ends.
        let keep_alive = request.keep_alive && !request.has_body;
        let head_only = request.method == "HEAD";
        let result = send(registry, &mut stream, &response, keep_alive, head_only);
        eprintln!(
            "{} {} {} {} {:.1}ms",
            request.method,
            request.path,
            response.status,
            if head_only { 0 } else { response.length() },
            started.elapsed().as_secs_f64() * 1000.0
        );
        if result.is_err() || !keep_alive {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn send(
    registry: &Registry,
    stream: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<()> {
    response.write_head(stream, keep_alive)?;
    if head_only {
        return stream.flush();
    }
    match &response.body {
        Body::Bytes(bytes) => stream.write_all(bytes)?,
        Body::Payload(offset, length) => {
            registry.chunks.send_range(*offset, *length, stream)?;
        }
    }
    stream.flush()
}
