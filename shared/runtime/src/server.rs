//! The HTTP side: one `ProxyHandler` per component (instances reused as Spin does by
//! default: up to 128 requests each, 16 at a time, dropped after 1 s idle; the first two are
//! settings), the router in front, and Spin's request headers on the way in.

use crate::outbound::{Outbound, full};
use vaultx_core::http::valid_host;
use vaultx_core::router::Router;
use crate::host::{HasSpin, SpinCtx, SpinView};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::{GuestTaskId, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus};

use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub const MAX_REQUESTS_PER_INSTANCE: usize = 128;
pub const MAX_CONCURRENT_PER_INSTANCE: usize = 16;
/// Requests one instance serves before a fresh one takes over: Spin's 128 unless
/// `--max-instance-reuse-count` says otherwise. A fresh instance starts from the component's
/// initial memory (no state of earlier requests survives it); each costs its instantiation,
/// its first requests' page faults and its teardown — about 7 % of a 4 KiB download's CPU time
/// at 128 (measured with tests/bench/edge).
pub static INSTANCE_REUSE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(MAX_REQUESTS_PER_INSTANCE);
/// Requests one instance serves at once: Spin's 16 unless `--instance-concurrency` says
/// otherwise. An instance is one thread; requests beyond this get an instance of their own,
/// which CPU-bound routes (hashing chunks) need to use more than one core.
pub static INSTANCE_CONCURRENCY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(MAX_CONCURRENT_PER_INSTANCE);
pub const IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);
/// Long enough for a 5 MiB chunk over a slow link; a guest stuck past it is cut off.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The store data of one component instance.
pub struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
    spin: SpinCtx,
    memory: Option<MemoryPeak>,
}

/// Follows an instance's linear memory as it grows and keeps the component's largest in
/// `vaultx_instance_memory_peak_bytes` (it never refuses growth).
#[derive(Clone)]
pub struct MemoryPeak {
    pub peak: Arc<std::sync::atomic::AtomicU64>,
    pub gauge: vaultx_core::metrics::IntGauge,
}

impl wasmtime::ResourceLimiter for MemoryPeak {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let peak = self.peak.fetch_max(desired as u64, std::sync::atomic::Ordering::Relaxed).max(desired as u64);
        self.gauge.set(peak as i64);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl Host {
    /// A fresh instance's store data: WASI with no environment and no preopened
    /// directories — a component reaches only what the manifest grants through the spin:*
    /// interfaces; its stdout/stderr are our log.
    pub fn new(allowed_outbound_hosts: Arc<Vec<String>>, spin: SpinCtx) -> Self {
        Host {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().stdout(crate::guest_stdout::GuestStdout).inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            outbound: Outbound { allowed: allowed_outbound_hosts },
            spin,
            memory: None,
        }
    }

    /// A store for this instance, its memory followed by `memory` when given.
    pub fn into_store(mut self, engine: &Engine, memory: Option<MemoryPeak>) -> Store<Host> {
        let follow = memory.is_some();
        self.memory = memory;
        let mut store = Store::new(engine, self);
        if follow {
            store.limiter(|host| host.memory.as_mut().expect("set above") as &mut dyn wasmtime::ResourceLimiter);
        }
        store
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

impl HasSpin for Host {
    fn spin(&mut self) -> SpinView<'_> {
        SpinView { ctx: &mut self.spin, table: &mut self.table }
    }
}

pub fn linker(engine: &Engine) -> anyhow::Result<wasmtime::component::Linker<Host>> {
    let mut linker = wasmtime::component::Linker::new(engine);
    // Rust's std on wasm32-wasip2 imports WASI 0.2; spin-sdk 7 speaks WASI 0.3. Both are needed.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    crate::host::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Everything needed to make a fresh instance of one component. Each serving thread has its
/// own handler (and instances) over a clone; the loaded component is shared.
#[derive(Clone)]
pub struct ComponentState {
    pub id: String,
    pub engine: Engine,
    /// The linked component, loaded by `load` when first needed (a request, or the preload
    /// that follows start-up): a start with a warm cache serves its first request without
    /// loading the other components first.
    pub pre: Arc<tokio::sync::OnceCell<ProxyPre<Host>>>,
    pub load: Arc<dyn Fn() -> anyhow::Result<ProxyPre<Host>> + Send + Sync>,
    pub make_spin: Arc<dyn Fn() -> SpinCtx + Send + Sync>,
    pub allowed_outbound_hosts: Arc<Vec<String>>,
    pub memory: MemoryPeak,
    /// `vaultx_instances_started_total` for this component.
    pub started: vaultx_core::metrics::IntCounter,
}

impl ComponentState {
    /// The linked component, loading it if this is the first use.
    pub async fn ready(&self) -> anyhow::Result<&ProxyPre<Host>> {
        self.pre.get_or_try_init(|| async { (self.load)() }).await
    }
}

impl HandlerState for ComponentState {
    type StoreData = Host;
    type WorkerExpiration = Expiration;
    type WorkerState = Reuse;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, Expiration, Reuse>> {
        let host = Host::new(self.allowed_outbound_hosts.clone(), (self.make_spin)());
        let mut store = host.into_store(&self.engine, Some(self.memory.clone()));
        let proxy = self.ready().await.map_err(|e| wasmtime::format_err!("component {}: {e:#}", self.id))?.instantiate_async(&mut store).await?;
        self.started.inc();
        Ok(Instance {
            store,
            proxy,
            view: <Host as WasiHttpView>::http,
            expiration: Expiration { sleep: Box::pin(tokio::time::sleep(Duration::MAX)) },
            state: Reuse { component: self.id.clone() },
        })
    }
}

pub struct Expiration {
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>, status: WorkerStatus, start: Instant) -> Poll<()> {
        let timeout = match status {
            WorkerStatus::Idle => IDLE_INSTANCE_TIMEOUT,
            WorkerStatus::Requests | WorkerStatus::PostReturn => REQUEST_TIMEOUT,
        };
        let deadline = tokio::time::Instant::from_std(start + timeout);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

pub struct Reuse {
    component: String,
}

impl WorkerState for Reuse {
    type StoreData = Host;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= INSTANCE_REUSE.load(std::sync::atomic::Ordering::Relaxed) {
            ShouldAccept::Never
        } else if concurrent >= INSTANCE_CONCURRENCY.load(std::sync::atomic::Ordering::Relaxed) {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(&self, _: StoreContextMut<'_, Host>, _: (), _: GuestTaskId) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(tokio::time::sleep(REQUEST_TIMEOUT))
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            eprintln!("vaultx-runtime: component {}: instance ended with an error: {e:?}", self.component);
        }
        drop(store);
    }
}

/// What one serving thread answers with: its own handlers (so a request, its connection and
/// the instance serving it stay on one thread), the rest shared by all threads.
pub struct App {
    pub router: Arc<Router>,
    /// Indexed by `Route::target`.
    pub handlers: Vec<ProxyHandler<ComponentState>>,
    /// The component id of each handler.
    pub components: Arc<Vec<String>>,
    /// Requests by component, route and status, latency, bytes: counted here, as an edge
    /// platform counts them (the functions share no memory), and added to the answer of
    /// [`METRICS_COMPONENT`].
    pub metrics: Arc<vaultx_core::metrics::RequestMetrics>,
    /// The engine, for its instance pool's figures, and the pool's size (`--max-instances`).
    pub engine: Engine,
    pub max_instances: u32,
}

/// The component answering `GET /health/metrics` with the stores' figures; the runtime
/// appends its own request families to its answer.
pub const METRICS_COMPONENT: &str = "health-metrics";

/// A body that adds the bytes passing through it to a counter.
struct Counted<B> {
    inner: B,
    counter: vaultx_core::metrics::IntCounter,
}

impl<B: http_body::Body<Data = bytes::Bytes> + Unpin> http_body::Body for Counted<B> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.counter.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn counted(body: WasiBody, counter: vaultx_core::metrics::IntCounter) -> WasiBody {
    http_body_util::BodyExt::boxed_unsync(Counted { inner: body, counter })
}

/// The metrics component's answer with the runtime's request families after its own.
async fn with_request_metrics(app: &App, response: http::Response<WasiBody>) -> http::Response<WasiBody> {
    let (mut parts, body) = response.into_parts();
    let mut text = match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) => {
            eprintln!("vaultx-runtime: {METRICS_COMPONENT}: reading its answer: {e:?}");
            Vec::new()
        }
    };
    // The pool's figures as of this scrape (none where the runtime runs without a pool).
    if let Some(pool) = app.engine.pooling_allocator_metrics() {
        let in_use = [pool.component_instances(), pool.memories() as u64, pool.tables() as u64, pool.stacks() as u64];
        for ((kind, capacity), in_use) in crate::compile::pool_capacity(app.max_instances).into_iter().zip(in_use) {
            app.metrics.instance_pool(kind, in_use, capacity.into());
        }
    }
    text.extend_from_slice(app.metrics.render().as_bytes());
    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(text.len()));
    http::Response::from_parts(parts, full(text))
}

/// Whether a handler failed for want of an instance slot (`--max-instances`). The handler
/// reports a failed instantiation as text ("instantiation error: maximum concurrent limit of
/// 1000 for component instances reached"), so the pool's own error is recognised by its words
/// as well as by its type; `tests/serve.rs` holds both to wasmtime's wording.
fn pool_exhausted(e: &wasmtime::Error) -> bool {
    e.chain().any(|cause| cause.is::<wasmtime::PoolConcurrencyLimitError>() || cause.to_string().contains("maximum concurrent limit of"))
}

/// The problem+json document of an answer the runtime writes itself (no component involved).
pub fn problem_document(status: u16, slug: &str, title: &str, detail: &str) -> String {
    serde_json::json!({"type": format!("urn:vaultx:problem:{slug}"), "title": title, "status": status, "detail": detail}).to_string()
}

/// A problem+json response written by the runtime itself (no component involved).
pub fn problem(status: u16, slug: &str, title: &str, detail: &str) -> http::Response<WasiBody> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/problem+json")
        .body(full(problem_document(status, slug, title, detail)))
        .expect("static response parts are valid")
}

/// The authority of a request: the absolute-form target's if it has one (RFC 9112 §3.2.2),
/// else its one valid Host header. HTTP/1.1 without exactly one Host is a 400 (§3.2); HTTP/1.0
/// may omit it, and is then addressed to the listen address. `Err` says why, for the 400.
fn authority(req: &hyper::Request<hyper::body::Incoming>, local: SocketAddr) -> Result<String, &'static str> {
    let hosts: Vec<&http::HeaderValue> = req.headers().get_all(http::header::HOST).iter().collect();
    if hosts.len() > 1 {
        return Err("send exactly one Host header");
    }
    if let Some(target) = req.uri().authority() {
        return if valid_host(target.as_str()) { Ok(target.as_str().to_owned()) } else { Err("the request target's authority is not a valid host") };
    }
    match hosts.first() {
        None if req.version() <= http::Version::HTTP_10 => Ok(local.to_string()),
        None => Err("an HTTP/1.1 request needs a Host header"),
        Some(value) => match value.to_str() {
            Ok(host) if valid_host(host) => Ok(host.to_owned()),
            _ => Err("the Host header is not a valid host[:port]"),
        },
    }
}

pub async fn handle(app: Arc<App>, mut req: hyper::Request<hyper::body::Incoming>, client: SocketAddr, local: SocketAddr) -> http::Response<WasiBody> {
    let started = Instant::now();
    let authority = match authority(&req, local) {
        Ok(a) => a,
        Err(detail) => {
            app.metrics.observe("", "", req.method().as_str(), 400, started.elapsed().as_secs_f64());
            return problem(400, "bad-request", "Bad request", detail);
        }
    };
    let path = req.uri().path().to_owned();
    let Some(m) = app.router.route(&path) else {
        app.metrics.observe("", "", req.method().as_str(), 404, started.elapsed().as_secs_f64());
        let method: String = req.method().as_str().chars().filter(|c| c.is_ascii_graphic()).take(32).collect();
        return problem(404, "not-found", "Not found", &format!("no route for {method} {path}"));
    };
    // The request line's path and query (a cheap clone of hyper's bytes, already validated).
    let path_and_query = req.uri().path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let full_url = format!("http://{authority}{path_and_query}");
    // Spin's request headers, so components behave the same here as under `spin up`. Their
    // names are fixed (no parsing), their values checked as any header value is.
    let spin_headers = [
        ("spin-full-url", full_url),
        ("spin-path-info", m.path_info.clone()),
        ("spin-matched-route", m.route.raw.clone()),
        ("spin-raw-component-route", m.route.raw.clone()),
        ("spin-component-route", m.route.base().to_owned()),
        ("spin-base-path", "/".to_owned()),
        ("spin-client-addr", client.to_string()),
    ];
    let target = m.route.target;
    let headers = req.headers_mut();
    for (name, value) in spin_headers {
        if let Ok(value) = http::HeaderValue::try_from(value) {
            headers.insert(http::HeaderName::from_static(name), value);
        }
    }
    for (key, value) in &m.params {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(format!("spin-path-match-{key}")), http::HeaderValue::try_from(value.as_str())) {
            headers.insert(name, value);
        }
    }
    // Built from its parts: the path and query are the request line's, whatever Host says
    // (and are not parsed a second time).
    let uri = authority.parse::<http::uri::Authority>().ok().and_then(|authority| {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(authority);
        parts.path_and_query = Some(path_and_query);
        http::Uri::from_parts(parts).ok()
    });
    match uri {
        Some(uri) => *req.uri_mut() = uri,
        None => return problem(400, "bad-request", "Bad request", "the request URL is not valid"),
    }
    let component = app.components[target].as_str();
    let method = req.method().clone();
    let bytes_in = app.metrics.bytes_in(component);
    let req = req.map(|body| counted(http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(body, wasmtime_wasi_http::Error::from)), bytes_in));
    let mut response = match app.handlers[target].handle((), req).await {
        Ok(response) => response,
        // Every instance of the pool is serving (`compile::MAX_INSTANCES`): an overload, not a
        // failure of the function, so the client is told to come back.
        Err(e) if pool_exhausted(&e) => {
            eprintln!("vaultx-runtime: component {component} ({}): {e}", m.route.raw);
            app.metrics.observe(component, &m.route.raw, method.as_str(), 503, started.elapsed().as_secs_f64());
            // The components' own `busy` (its status, type and title), so clients see one kind.
            let kind = vaultx_core::problem::ProblemKind::Busy;
            let mut busy = problem(kind.status(), kind.slug(), kind.title(), "every instance is serving; retry shortly");
            busy.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            return busy;
        }
        Err(e) => {
            // The route, not the path: a path may hold a signed URL's token.
            eprintln!("vaultx-runtime: component {component} ({}): {e:?}", m.route.raw);
            problem(500, "internal", "Internal error", "the function failed before it could respond")
        }
    };
    app.metrics.observe(component, &m.route.raw, method.as_str(), response.status().as_u16(), started.elapsed().as_secs_f64());
    if component == METRICS_COMPONENT && method == http::Method::GET && response.status() == http::StatusCode::OK {
        response = with_request_metrics(&app, response).await;
    }
    let bytes_out = app.metrics.bytes_out(component);
    response.map(|body| counted(body, bytes_out))
}

