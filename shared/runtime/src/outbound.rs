//! Outbound HTTP from components, allowed only to the hosts the manifest lists in
//! `allowed_outbound_hosts` (`scheme://host:port`, `*` wildcards, `*.domain` suffixes).
//! Plain HTTP is sent here (TCP_NODELAY, origin-form); HTTPS by wasmtime-wasi-http's default
//! sender (rustls, the webpki roots).

use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Clone, Debug, PartialEq)]
struct Allowed {
    scheme: String,
    host: String,
    port: String,
}

fn parse_allowed(entry: &str) -> Option<Allowed> {
    let (scheme, rest) = entry.split_once("://")?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.to_owned()),
        None => (rest.to_owned(), match scheme {
            "http" => "80".into(),
            "https" => "443".into(),
            _ => "*".into(),
        }),
    };
    Some(Allowed { scheme: scheme.to_owned(), host, port })
}

pub fn is_allowed(allowed: &[String], scheme: &str, host: &str, port: u16) -> bool {
    allowed.iter().filter_map(|a| parse_allowed(a)).any(|a| {
        (a.scheme == "*" || a.scheme == scheme)
            && (a.host == "*" || a.host.eq_ignore_ascii_case(host) || a.host.strip_prefix("*.").is_some_and(|d| host.ends_with(&format!(".{d}"))))
            && (a.port == "*" || a.port == port.to_string())
    })
}

pub struct Outbound {
    pub allowed: Arc<Vec<String>>,
}

type SendResult = wasmtime_wasi_http::Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>)>;

/// wasmtime-wasi-http's own list, built once: its default check made a new `Arc` for every
/// header of every request and response, and the list is a `const`, so each use built its
/// nine `HeaderName`s again (validating each name) and dropped them.
static FORBIDDEN_HEADERS: std::sync::LazyLock<wasmtime_wasi_http::ForbiddenHeaderFilter> = std::sync::LazyLock::new(|| {
    let list = wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS;
    Arc::new(move |name| list.contains(name))
});

impl WasiHttpHooks for Outbound {
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        FORBIDDEN_HEADERS(name)
    }

    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        FORBIDDEN_HEADERS.clone()
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let host = uri.host().unwrap_or("").to_owned();
        let port = uri.port_u16().unwrap_or(if scheme == "http" { 80 } else { 443 });
        let allowed = is_allowed(&self.allowed, &scheme, &host, port);
        Box::new(async move {
            if !allowed {
                return Err(Error::HttpRequestDenied);
            }
            if scheme != "http" {
                // HTTPS: wasmtime's own sender (rustls, the webpki roots).
                let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                let response = response.map(|b| b.boxed_unsync());
                return Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>));
            }
            // Plain HTTP (an S3-compatible server next to the runtime, say): TCP_NODELAY so a
            // request goes out at once, TCP_QUICKACK so a response's tail does not wait on our
            // delayed ACK (see QuickAck).
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(Error::Connect)?;
            let _ = stream.set_nodelay(true);
            let _ = socket2::SockRef::from(&stream).set_tcp_quickack(true);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(QuickAck(stream))).await?;
            // The connection runs on its own task: it must make progress while the request is
            // sent and the response awaited, and until the body is read.
            let driver = tokio::spawn(conn);
            let mut request = request;
            // A guest that says its body is empty gets exactly that on the wire: no chunked
            // encoding for hyper to finish with a terminator the server waits on.
            if request.headers().get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0") {
                *request.body_mut() = full(Bytes::new());
                request.headers_mut().remove(http::header::TRANSFER_ENCODING);
            }
            // Origin-form: the authority travels in Host (a request target with a scheme is
            // only for proxies).
            let target = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
            *request.uri_mut() = target.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
            let response = sender.send_request(request).await?;
            let response = response.map(|b| b.map_err(Error::from).boxed_unsync());
            let io = async move {
                match driver.await {
                    Ok(result) => result.map_err(Error::from),
                    Err(_) => Err(Error::ConnectionTerminated),
                }
            };
            Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>))
        })
    }
}

/// A client socket that acknowledges at once. The runtime reads a response only as fast as
/// the guest pulls it, which Linux takes for a bulk receiver and delays its ACKs (40 ms); a
/// server that does not disable Nagle then holds a response's last partial segment until
/// that ACK comes — 40 ms on every S3 GET. `TCP_QUICKACK` is not sticky, so it is set again
/// after every read.
struct QuickAck(tokio::net::TcpStream);

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.0).poll_read(cx, buf);
        if polled.is_ready() {
            let _ = socket2::SockRef::from(&this.0).set_tcp_quickack(true);
        }
        polled
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// A body for responses the runtime writes itself.
pub fn full(bytes: impl Into<Bytes>) -> WasiBody {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_hosts_match_like_spin() {
        let allowed = vec!["https://api.example.com".to_owned(), "http://localhost:*".to_owned(), "https://*.cdn.net".to_owned()];
        assert!(is_allowed(&allowed, "https", "api.example.com", 443));
        assert!(!is_allowed(&allowed, "http", "api.example.com", 80));
        assert!(!is_allowed(&allowed, "https", "api.example.com", 8443));
        assert!(is_allowed(&allowed, "http", "localhost", 3000));
        assert!(is_allowed(&allowed, "https", "eu.cdn.net", 443));
        assert!(!is_allowed(&allowed, "https", "cdn.net.evil.org", 443));
        assert!(!is_allowed(&[], "http", "localhost", 80));
    }

    #[test]
    fn the_headers_a_guest_may_not_set_are_wasmtimes_list() {
        let mut hooks = Outbound { allowed: Arc::new(Vec::new()) };
        let filter = hooks.forbidden_header_filter();
        for name in ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "transfer-encoding", "upgrade", "host", "http2-settings"] {
            let name = http::HeaderName::from_static(name);
            assert!(hooks.is_forbidden_header(&name) && filter(&name), "{name}");
        }
        for name in ["content-type", "content-length", "etag", "x-request-id", "authorization", "set-cookie"] {
            let name = http::HeaderName::from_static(name);
            assert!(!hooks.is_forbidden_header(&name) && !filter(&name), "{name}");
        }
    }
}
