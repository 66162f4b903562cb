//! The VaultX ports on Spin (spin-sdk 7, WASIp3): metadata on Spin SQLite, configuration
//! and secrets from Spin variables, time and entropy from WASI. Plus [`route!`], which turns
//! one `vaultx_api::routes::*` module into a Spin HTTP component.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use spin_sdk::sqlite::{Connection, Value};
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse};
use vaultx_core::ports::{Clock, Config, Entropy, Platform, Row, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::ProblemKind;

/// The response type every VaultX Spin component returns.
pub type Response = http::Response<Full<Bytes>>;

/// Binds one route module (`handle` + `MAX_BODY`) as this component's HTTP handler.
///
/// ```ignore
/// vaultx_spin::route!(vaultx_api::routes::auth_login);
/// ```
#[macro_export]
macro_rules! route {
    ($($module:ident)::+) => {
        #[::spin_sdk::http_service]
        async fn handle(request: ::spin_sdk::http::Request) -> $crate::Response {
            let platform = $crate::SpinPlatform;
            match $crate::read_request(request, $($module)::+::MAX_BODY).await {
                Ok(request) => $crate::into_response($($module)::+::handle(&platform, request).await),
                Err(problem) => $crate::into_response($crate::problem_response(&problem)),
            }
        }
    };
}

/// Reads the request, refusing bodies over `max_body` bytes with 413 before reading them
/// when `Content-Length` already tells, and as soon as the limit is crossed otherwise.
pub async fn read_request(request: spin_sdk::http::Request, max_body: usize) -> Result<ApiRequest, Problem> {
    let (parts, body) = request.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let too_large = || Problem::new(ProblemKind::PayloadTooLarge, format!("this route accepts at most {max_body} bytes"));
    let declared = parts.headers.get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large());
    }
    let body = match Limited::new(body, max_body).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => return Err(Problem::new(ProblemKind::MalformedJson, format!("could not read the request body: {e}"))),
    };
    Ok(ApiRequest {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body,
    })
}

pub fn problem_response(problem: &Problem) -> ApiResponse {
    ApiResponse::problem(problem)
}

pub fn into_response(api: ApiResponse) -> Response {
    let length = api.body.len();
    let mut response = Response::new(Full::new(Bytes::from(api.body)));
    // A known length lets the host send Content-Length instead of chunked encoding.
    response.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(length));
    *response.status_mut() = spin_sdk::http::StatusCode::from_u16(api.status).unwrap_or(spin_sdk::http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in api.headers {
        if let (Ok(name), Ok(value)) =
            (spin_sdk::http::HeaderName::try_from(name), spin_sdk::http::HeaderValue::try_from(value))
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// The platform as one Spin component sees it. Stateless: Spin may reuse an instance for
/// many requests, so nothing request-specific lives here or in globals.
pub struct SpinPlatform;

impl Clock for SpinPlatform {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

impl Entropy for SpinPlatform {
    fn fill(&self, buf: &mut [u8]) {
        // wasi:random cannot fail short of a broken host; a zero-filled salt would be worse
        // than stopping, so a failure here traps and the runtime answers 500.
        getrandom::fill(buf).expect("wasi:random is available");
    }
}

impl Config for SpinPlatform {
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        match spin_sdk::variables::get(name).await {
            Ok(v) => Ok(Some(v)),
            Err(spin_sdk::variables::Error::Undefined(_)) => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!("variable {name}: {e:?}"))),
        }
    }
}

impl Platform for SpinPlatform {
    type Metadata = SpinSqlite;

    async fn metadata(&self) -> Result<SpinSqlite, StoreError> {
        Connection::open_default().await.map(SpinSqlite).map_err(store_error)
    }
}

/// The metadata store on Spin's SQLite (`sqlite_databases = ["default"]`).
pub struct SpinSqlite(Connection);

fn store_error(e: spin_sdk::sqlite::Error) -> StoreError {
    match e {
        spin_sdk::sqlite::Error::AccessDenied => StoreError::AccessDenied("sqlite database \"default\"".into()),
        other => StoreError::Unavailable(format!("{other:?}")),
    }
}

fn to_value(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(n) => Value::Integer(n),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Blob(b),
    }
}

fn from_value(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Integer(n) => SqlValue::Integer(n),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
    }
}

impl Sql for SpinSqlite {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, StoreError> {
        let result = self.0.execute(sql, params.into_iter().map(to_value)).await.map_err(store_error)?;
        let rows = result.collect().await.map_err(store_error)?;
        Ok(rows.into_iter().map(|r| Row(r.values.into_iter().map(from_value).collect())).collect())
    }

    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let result = self.0.execute(sql, params.into_iter().map(to_value)).await.map_err(store_error)?;
        result.collect().await.map_err(store_error)?;
        Ok(self.0.changes().await)
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock up front: two batches cannot deadlock upgrading.
        self.execute("BEGIN IMMEDIATE", vec![]).await?;
        for s in statements {
            if let Err(e) = self.execute(s.sql, s.params).await {
                let _ = self.execute("ROLLBACK", vec![]).await;
                return Err(e);
            }
        }
        self.execute("COMMIT", vec![]).await.map(drop)
    }
}
