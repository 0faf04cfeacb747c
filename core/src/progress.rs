//! How long operations report what they do: steps as lines of text, and bytes as they move so a
//! front end can draw a bar. The plugin renders both; tests and the operator log the steps.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// Receives the progress of a long operation.
pub trait Progress: Sync {
    /// A new step begins.
    fn step(&self, message: &str);
    /// `bytes` more are going to move (downloads and uploads announce their sizes as they learn
    /// them, so the total can grow).
    fn expect_bytes(&self, bytes: u64) {
        let _ = bytes;
    }
    /// `bytes` more have moved.
    fn moved_bytes(&self, bytes: u64) {
        let _ = bytes;
    }
}

/// Steps passed to a closure; bytes ignored.
pub struct Steps<F>(pub F);

impl<F: Fn(&str) + Sync> Progress for Steps<F> {
    fn step(&self, message: &str) {
        (self.0)(message);
    }
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _message: &str) {}
}

/// An [`AsyncWrite`] that reports every byte written through it as moved.
pub struct CountingWriter<'a, W> {
    inner: W,
    progress: &'a dyn Progress,
}

impl<'a, W> CountingWriter<'a, W> {
    /// Wraps `inner`.
    pub fn new(inner: W, progress: &'a dyn Progress) -> Self {
        Self { inner, progress }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(context, buffer);
        if let Poll::Ready(Ok(written)) = &poll {
            self.progress.moved_bytes(*written as u64);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::AsyncWriteExt;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<u64>);

    impl Progress for Recorder {
        fn step(&self, _message: &str) {}
        fn moved_bytes(&self, bytes: u64) {
            *self.0.lock().unwrap() += bytes;
        }
    }

    #[tokio::test]
    async fn counting_writer_reports_what_it_writes() {
        let recorder = Recorder::default();
        let mut sink = Vec::new();
        let mut writer = CountingWriter::new(&mut sink, &recorder);
        writer.write_all(&[1u8; 3000]).await.unwrap();
        writer.write_all(b"abc").await.unwrap();
        writer.flush().await.unwrap();
        assert_eq!(*recorder.0.lock().unwrap(), 3003);
        assert_eq!(sink.len(), 3003);
    }
}
