//! Captured stdout/stderr of a plugin: an in-memory pipe with a hard cap.
//!
//! A plugin that writes more than the cap in one run traps (reported as an
//! `error` result naming the limit), so a flood can neither exhaust the
//! agent's memory nor its log. What was captured is forwarded to tracing
//! after each run by the caller.

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Shared state behind a [`CappedPipe`].
#[derive(Debug, Default)]
struct Inner {
    buf: Vec<u8>,
    overflowed: bool,
}

/// A capped, clonable output pipe.
#[derive(Debug, Clone)]
pub struct CappedPipe {
    cap: usize,
    inner: Arc<Mutex<Inner>>,
}

impl CappedPipe {
    /// A pipe that accepts at most `cap` bytes per run.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            inner: Arc::default(),
        }
    }

    /// Takes what was written since the last call, and whether the cap was
    /// hit; resets both.
    pub fn take(&self) -> (Vec<u8>, bool) {
        let mut i = self.inner.lock().unwrap();
        let over = std::mem::take(&mut i.overflowed);
        (std::mem::take(&mut i.buf), over)
    }

    /// Whether the cap was hit since the last [`take`](Self::take).
    pub fn overflowed(&self) -> bool {
        self.inner.lock().unwrap().overflowed
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        let mut i = self.inner.lock().unwrap();
        if i.buf.len() + bytes.len() > self.cap {
            i.overflowed = true;
            return Err(StreamError::Trap(wasmtime::format_err!(
                "plugin output exceeded the limit of {} bytes per run",
                self.cap
            )));
        }
        i.buf.extend_from_slice(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always permit a write of up to 64 KiB: the limit is enforced in
        // `write`, where the overflow traps, rather than by reporting a
        // closed stream, which guests would take for a normal condition.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(AsyncSink(self.clone()))
    }
}

/// `AsyncWrite` view used by WASIp3 streams (not used by p2 guests, but the
/// trait requires it); it applies the same cap.
struct AsyncSink(CappedPipe);

impl tokio::io::AsyncWrite for AsyncSink {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut i = self.0.inner.lock().unwrap();
        if i.buf.len() + data.len() > self.0.cap {
            i.overflowed = true;
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "plugin output limit exceeded",
            )));
        }
        i.buf.extend_from_slice(data);
        std::task::Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
