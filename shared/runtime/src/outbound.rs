//! Outbound HTTP from components, allowed only to the hosts the manifest lists in
//! `allowed_outbound_hosts` (`scheme://host:port`, `*` wildcards, `*.domain` suffixes).
//! Sent by wasmtime-wasi-http's default sender (HTTP, and HTTPS with the webpki roots).

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

impl WasiHttpHooks for Outbound {
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
            // wasmtime's own sender: HTTP and HTTPS (rustls, webpki roots), drives the
            // connection while the response is awaited, origin-form request target.
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            let response = response.map(|b| b.boxed_unsync());
            Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>))
        })
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
}
