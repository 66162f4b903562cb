//! Problem documents for requests hyper cannot parse. hyper answers a malformed request line
//! or header, an oversized head (431) or URI (414) itself, before any service runs, with an
//! empty body and no hook to change it. This connection wrapper recognises those canned
//! answers on their way out and sends an RFC 9457 problem+json instead, so every error VaultX
//! returns — even one no component saw — is a problem document.
//!
//! Recognising them is unambiguous: they are the only responses with one of those statuses and
//! `content-length: 0`; every error the runtime or a component writes carries a problem body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct ProblemOnParseError<T> {
    inner: T,
    /// A replacement being written: its bytes, how many went out, and how many bytes of
    /// hyper's own answer to report as written once it is done.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> ProblemOnParseError<T> {
    pub fn new(inner: T) -> Self {
        Self { inner, replacing: None }
    }
}

/// The problem+json response that replaces hyper's canned `head`, if `head` is one.
pub fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    if head.len() < 16 || !(head.starts_with(b"HTTP/1.1 ") || head.starts_with(b"HTTP/1.0 ")) || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let (status, slug, title, detail) = match &head[9..12] {
        b"400" => (400, "bad-request", "Bad request", "the request line or a header is malformed (RFC 9112)"),
        b"414" => (414, "uri-too-long", "URI too long", "the request target is longer than this server accepts"),
        b"431" => (431, "request-header-fields-too-large", "Request header fields too large", "the request's headers are larger than this server accepts"),
        _ => return None,
    };
    let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
    if !text.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let body = crate::server::problem_document(status, slug, title, detail);
    let reason = std::str::from_utf8(&head[13..head.iter().position(|b| *b == b'\r')?]).ok()?;
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemOnParseError<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemOnParseError<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            match replacement(buf) {
                Some(bytes) => this.replacing = Some((bytes, 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // hyper offers the same bytes again until we report them written.
        let (bytes, sent, claimed) = this.replacing.as_mut().expect("set above");
        while *sent < bytes.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *sent += n,
                other => return other,
            }
        }
        let claimed = *claimed;
        this.replacing = None;
        Poll::Ready(Ok(claimed))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_canned_errors_become_problem_documents() {
        let canned = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 25 Nov 2026 14:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(canned).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/problem+json\r\n"), "{out}");
        let body: serde_json::Value = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!((body["status"].as_u64(), body["type"].as_str()), (Some(431), Some("urn:vaultx:problem:request-header-fields-too-large")));
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").is_some());
    }

    #[test]
    fn every_other_response_passes_untouched() {
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 97\r\n\r\n").is_none(), "a problem body of ours");
        assert!(replacement(b"HTTP/1.1 204 No Content\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{\"x\":1}").is_none(), "a head with a body");
    }
}
