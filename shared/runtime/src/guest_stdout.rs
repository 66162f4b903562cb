//! The components' standard output (their request log lines, one JSON line per request),
//! collected in one buffer and written out in batches, as nginx's `access_log … buffer=`.
//!
//! Written straight through, every line was a `write` of its own to the log file (an ext4
//! append, 2–3 µs of kernel time, and the stdout lock held across it, which the other serving
//! thread then waited for): about 3 % of a small download's CPU. Here a line is copied into
//! the buffer, which goes out in one `write`:
//! - when a serving thread has nothing left to do (its runtime parks): an idle or lightly
//!   loaded runtime writes every line right after its request, as before;
//! - when it holds [`BUFFER_BYTES`];
//! - every [`FLUSH_EVERY`] (a thread of its own), so a busy runtime's lines are never later
//!   than that;
//! - at a stop, and before the runtime exits on an error.
//!
//! A guest's `flush` asks for no `write`: its lines are in the runtime's hands, and what a
//! kill -9 loses is at most the last [`FLUSH_EVERY`] of lines, never part of one (a guest's
//! write goes into the buffer whole). Standard error is not buffered: its lines are the
//! unusual ones, and wanted at once.

use std::io::Write;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Written out once it holds this much.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// The longest a line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Adds one write of a guest's to the buffer (whole: lines of different guests never mix).
/// std's stdout lock is taken only by a write that goes out (`Stdout` locks per call), not by
/// every line that merely joins the buffer.
pub fn append(bytes: &[u8]) {
    let mut buffer = BUFFER.lock().unwrap_or_else(|e| e.into_inner());
    append_to(&mut buffer, bytes, &mut std::io::stdout());
}

/// Writes out whatever the buffer holds.
pub fn flush() {
    let mut buffer = BUFFER.lock().unwrap_or_else(|e| e.into_inner());
    write_out(&mut buffer, &mut std::io::stdout());
}

/// Under the buffer's lock, so batches go out in the order their lines came in.
fn append_to(buffer: &mut Vec<u8>, bytes: &[u8], out: &mut impl Write) {
    if buffer.len() + bytes.len() > BUFFER_BYTES {
        write_out(buffer, out);
    }
    if bytes.len() >= BUFFER_BYTES {
        // Larger than the buffer: straight through (after what was waiting, in order).
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    } else {
        buffer.extend_from_slice(bytes);
    }
}

fn write_out(buffer: &mut Vec<u8>, out: &mut impl Write) {
    if buffer.is_empty() {
        return;
    }
    // A log that cannot be written (a full disk, a closed pipe) must not stop serving; the
    // lines are dropped as `inherit_stdout` would have dropped them.
    let _ = out.write_all(buffer).and_then(|()| out.flush());
    buffer.clear();
    // Keep the buffer's capacity for the next batch, but not a burst's.
    buffer.shrink_to(BUFFER_BYTES);
}

/// Starts the thread that writes the buffer out every [`FLUSH_EVERY`].
pub fn start_flushing() -> std::io::Result<()> {
    std::thread::Builder::new().name("stdout-flush".into()).spawn(|| {
        loop {
            std::thread::sleep(FLUSH_EVERY);
            flush();
        }
    })?;
    Ok(())
}

/// What `WasiCtxBuilder::stdout` takes: every stream it makes writes to the one buffer.
pub struct GuestStdout;

impl IsTerminal for GuestStdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Stream)
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(Stream)
    }
}

struct Stream;

impl OutputStream for Stream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // As much as wasmtime's own stdout takes at once.
        Ok(1024 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for Stream {
    // Always ready: a write never waits.
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_kept_whole_and_in_order_and_go_out_when_the_buffer_is_full() {
        let (mut buffer, mut out) = (Vec::new(), Vec::new());
        append_to(&mut buffer, b"one\n", &mut out);
        append_to(&mut buffer, b"two\n", &mut out);
        assert_eq!((&buffer[..], &out[..]), (&b"one\ntwo\n"[..], &b""[..]));
        // One more that does not fit: what was waiting goes out first, the new one waits.
        let almost = vec![b'x'; BUFFER_BYTES - 4];
        append_to(&mut buffer, &almost, &mut out);
        assert_eq!((buffer.len(), &out[..]), (almost.len(), &b"one\ntwo\n"[..]));
        // Larger than the whole buffer: straight out, after what was waiting.
        let huge = vec![b'y'; BUFFER_BYTES + 1];
        append_to(&mut buffer, &huge, &mut out);
        assert!(buffer.is_empty());
        assert_eq!(out.len(), 8 + almost.len() + huge.len());
        assert!(out[8..8 + almost.len()].iter().all(|&b| b == b'x') && out[8 + almost.len()..].iter().all(|&b| b == b'y'));
        write_out(&mut buffer, &mut out);
        assert_eq!(out.len(), 8 + almost.len() + huge.len());
    }

    #[test]
    fn a_burst_does_not_keep_its_memory() {
        let (mut buffer, mut out) = (Vec::with_capacity(4 * BUFFER_BYTES), Vec::new());
        buffer.extend_from_slice(b"line\n");
        write_out(&mut buffer, &mut out);
        assert!(buffer.is_empty() && buffer.capacity() <= BUFFER_BYTES);
        assert_eq!(out, b"line\n");
    }
}
