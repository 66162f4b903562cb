//! The HTTP side of the client: configuration, and one method per API call. Problems from
//! the server become [`CliError::Server`] with their title and detail.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

pub const PAGE: u64 = 100;

#[derive(Debug)]
pub enum CliError {
    /// Bad usage or local trouble (exit 2).
    Usage(String),
    /// The server answered with a problem (exit 1).
    Server { status: u16, title: String, detail: String },
    /// The network failed (exit 1).
    Network(String),
    /// An upload stopped before its end, as asked (exit 3).
    Incomplete(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Server { .. } | Self::Network(_) => 1,
            Self::Incomplete(_) => 3,
        }
    }

    /// Worth trying again: the network, or a server that said so.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Network(_)) || matches!(self, Self::Server { status, .. } if *status >= 500)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(m) | Self::Network(m) | Self::Incomplete(m) => f.write_str(m),
            Self::Server { status, title, detail } => write!(f, "{title} ({status}): {detail}"),
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
pub struct Config {
    pub url: Option<String>,
    pub token: Option<String>,
    /// Uploads under way: "<path>|<size>|<sha256>" → file id, for resuming.
    #[serde(default)]
    pub uploads: std::collections::BTreeMap<String, String>,
}

fn config_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("vaultx").join("config.json")
}

impl Config {
    pub fn load() -> Self {
        std::fs::read(config_path()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub fn save(&self) -> Result<(), CliError> {
        let path = config_path();
        let io = |e: std::io::Error| CliError::Usage(format!("saving {}: {e}", path.display()));
        std::fs::create_dir_all(path.parent().unwrap()).map_err(io)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap()).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // It holds an access token.
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

pub struct Api {
    pub base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(config: &Config) -> Result<Self, CliError> {
        let base = config.url.clone().ok_or_else(|| CliError::Usage("no server: pass --url or set VAULTX_URL".into()))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .build()
            .into();
        Ok(Self { base, token: config.token.clone(), agent })
    }

    pub fn token(&self) -> Result<&str, CliError> {
        self.token.as_deref().ok_or_else(|| CliError::Usage("not signed in: run vaultx login EMAIL".into()))
    }

    /// Sends a request and returns the response body; problems become errors.
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, String)], body: Option<&[u8]>) -> Result<Vec<u8>, CliError> {
        let mut req = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let sent = match body {
            Some(b) => self.agent.run(req.body(b.to_vec()).map_err(|e| CliError::Usage(e.to_string()))?),
            None => self.agent.run(req.body(()).map_err(|e| CliError::Usage(e.to_string()))?),
        };
        let mut resp = sent.map_err(|e| CliError::Network(format!("{method} {path}: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(64 << 20).read_to_vec().map_err(|e| CliError::Network(e.to_string()))?;
        if status >= 400 {
            let doc: Value = serde_json::from_slice(&body).unwrap_or_default();
            return Err(CliError::Server {
                status,
                title: doc["title"].as_str().unwrap_or("request failed").to_owned(),
                detail: doc["detail"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(body)
    }

    pub fn json(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(t) = &self.token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let bytes = body.map(|b| b.to_string().into_bytes());
        let reply = self.call(method, path, &headers, bytes.as_deref())?;
        if reply.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&reply).map_err(|e| CliError::Network(format!("{path}: not JSON: {e}")))
    }

    pub fn register(&self, email: &str, password: &str) -> Result<Value, CliError> {
        self.json("POST", "/api/auth/register", Some(json!({"email": email, "password": password})))
    }

    pub fn login(&self, email: &str, password: &str) -> Result<String, CliError> {
        let r = self.json("POST", "/api/auth/login", Some(json!({"email": email, "password": password})))?;
        r["accessToken"].as_str().map(str::to_owned).ok_or_else(|| CliError::Network("login answered without a token".into()))
    }

    pub fn list(&self, page: u64) -> Result<Value, CliError> {
        self.token()?;
        self.json("GET", &format!("/api/files?page={page}&limit={PAGE}&sort=createdAt&order=asc"), None)
    }

    pub fn delete(&self, id: &str) -> Result<(), CliError> {
        self.token()?;
        self.json("DELETE", &format!("/api/files/{id}"), None).map(drop)
    }

    pub fn signed_url(&self, id: &str, expires: u64) -> Result<String, CliError> {
        self.token()?;
        let r = self.json("POST", &format!("/api/files/{id}/signed-url"), Some(json!({"expirationSeconds": expires})))?;
        let url = r["url"].as_str().ok_or_else(|| CliError::Network("no url in the answer".into()))?;
        // A relative URL (no origin known to the server) is made absolute with ours.
        Ok(if url.starts_with('/') { format!("{}{url}", self.base) } else { url.to_owned() })
    }

    pub fn upload_chunk(&self, id: &str, index: u64, data: &[u8]) -> Result<Value, CliError> {
        let digest = vaultx_core::digest::content_digest(&vaultx_core::digest::sha256(data));
        let headers = [
            ("authorization", format!("Bearer {}", self.token()?)),
            ("content-type", "application/octet-stream".to_owned()),
            ("content-digest", digest),
        ];
        let reply = self.call("POST", &format!("/api/files/{id}/chunks/{index}"), &headers, Some(data))?;
        serde_json::from_slice(&reply).map_err(|e| CliError::Network(e.to_string()))
    }

    /// Opens a streaming GET (for downloads).
    pub fn open(&self, url: &str) -> Result<ureq::http::Response<ureq::Body>, CliError> {
        let resp = self.agent.get(url).call().map_err(|e| CliError::Network(e.to_string()))?;
        if resp.status().as_u16() >= 400 {
            let status = resp.status().as_u16();
            let mut resp = resp;
            let doc: Value = resp.body_mut().read_to_vec().ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
            return Err(CliError::Server {
                status,
                title: doc["title"].as_str().unwrap_or("download failed").to_owned(),
                detail: doc["detail"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(resp)
    }
}
