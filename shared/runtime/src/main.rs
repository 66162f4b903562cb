//! `vaultx-runtime`: serves a Spin application (spin.toml) on 127.0.0.1 using wasmtime —
//! the embedded default for running VaultX locally and the runtime the end-to-end tests use.
//!
//! # In detail
//!
//! In detail (depends on wasmtime, hyper, rusqlite, mimalloc): The local host: reads `spin.toml`,
//! serves its components on wasmtime 48 (WASIp2 + WASIp3, `wasi:http@0.3`), implements
//! `spin:sqlite`, `spin:key-value`, `spin:variables` (one module each under `host/`, as Spin's
//! factors: resource types, state, linker registration), outbound HTTP (`outbound.rs`:
//! `allowed_outbound_hosts`; plain HTTP sent by hyper on a socket with `TCP_NODELAY` and
//! `TCP_QUICKACK`, HTTPS by wasmtime-wasi-http's default sender), outbound `spin:redis` and
//! `spin:postgres@4.2.0` (`host/postgres.rs`: a `tokio-postgres` pool per address, checked against
//! `allowed_outbound_hosts`) with per-component grants, applies `infra/migrations` to SQLite and,
//! when `database_url` is set, to PostgreSQL (`migrate.rs`: one source, PostgreSQL's dialect
//! derived from it), runs the Redis trigger (`redis_trigger.rs`, a real subscriber per address) and
//! the sweep timer; keeps key-value data in one SQLite file (`key_value.db`; the audit spool, which
//! every download writes to, in a file of its own, `key_value-audit.db`, so its commits leave the
//! read path's page caches alone; its events are appended to a log file, `key_value-audit.log.<n>`,
//! on the calling thread and answered then, and the writer thread moves them into the database
//! every 10 ms and before any read of the spool: `AppendLog`) — small values as rows, values over
//! 16 KiB (blob pieces) in files of their own under `kv-values/` that the row names (written under
//! a fresh name, then the row, then the old file removed: a reader sees the old value or the new
//! one) — read on pooled read connections on the calling thread (rows of the shared file also kept
//! in a 16 MiB read cache, `ReadCache`, which the writer thread clears of each changed key after
//! committing it and before answering it), written by one writer thread that group-commits whatever
//! writes are waiting, checkpointed by a thread of its own that never shrinks the log under a
//! writer, and emptied at stop (`stores.rs`); compiles the components a cold cache lacks before
//! serving, on every core at once, then loads each component (HTTP or Redis-triggered) when first
//! needed — its first request or message — and then all of them in the background, finding cached
//! artefacts through a `stat` index instead of hashing every component at each start (`compile.rs`,
//! `main.rs::preload`); retires an instance after `--max-instance-reuse-count` requests
//! (`server::INSTANCE_REUSE`, Spin's 128) and counts the instances it starts
//! (`vaultx_instances_started_total`); takes every instance's memory and tables from a pool
//! reserved at start (`compile::instance_pool`: `--max-instances`, Spin's 1000; a retired
//! instance's slot is reset in place for the next; a request beyond the pool is answered 503
//! `busy`, `server::pool_exhausted`); serves HTTP on one single-threaded runtime per core
//! (`--serving-threads`), jobs and the sweep beside them on the main runtime; follows each
//! component's largest instance memory (`server::MemoryPeak`, `vaultx_instance_memory_peak_bytes`);
//! validates `Host` (`server.rs`) and answers requests hyper cannot parse with problem+json
//! (`parse_errors.rs`); counts requests, latency and body bytes per component (`server.rs`,
//! `vaultx_core::metrics`) and appends them, with the instance pool's slots in use and its
//! capacity, to `health-metrics`' answer; checks every setting before serving
//! (`manifest::check_settings`, also `vaultx-runtime check-config`); allocates blocks under 4 KiB
//! from mimalloc and larger ones from glibc (`alloc.rs`: the per-request objects fast, the bodies'
//! memory handed back); collects the components' stdout (their log lines) in one buffer, written
//! out when a serving thread goes idle, at 64 KiB, every 50 ms and at a stop (`guest_stdout.rs`).

mod alloc;
mod compile;
mod guest_stdout;
mod manifest;
mod migrate;
mod outbound;
mod parse_errors;
mod host;
mod redis_trigger;
mod server;
mod stores;

use anyhow::{Context, Result, bail};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_http::handler::{ProxyHandler, ProxyPre};

#[global_allocator]
static ALLOCATOR: alloc::Split = alloc::Split;

const USAGE: &str = "usage: vaultx-runtime [--manifest spin.toml] [--listen 127.0.0.1:3000] [--data-dir .vaultx/data]
                      [--cache-dir .vaultx/cache] [--migrations DIR] [--ready-file FILE]
                      [--sweep-interval 5] [--instance-concurrency 16] [--max-instance-reuse-count 128]
                      [--serving-threads N] [--max-instances 1000]
       vaultx-runtime --migrate-only --data-dir DIR --migrations DIR
       vaultx-runtime check-config [--manifest spin.toml | --wrangler wrangler.toml]

Serves every [[trigger.http]] of the manifest. Application variables come from the
environment as SPIN_VARIABLE_<NAME>, as with `spin up`. --migrations applies DIR/*.sql to the
default SQLite database once each. --ready-file is written with the bound address when serving.
Every [[trigger.redis]] component also gets the message `sweep` every --sweep-interval
seconds (0: never), straight from the runtime, with or without Redis: VaultX's job consumers
then run whatever is due (a lost wake-up, an expired lease, a retry).
--instance-concurrency is how many requests one instance serves at once (Spin: 16); an
instance is one task, so 1 lets concurrent CPU-bound requests spread over the serving threads.
--max-instance-reuse-count is how many requests one instance serves before a fresh instance
takes over (Spin: 128; 1: a fresh instance for every request).
--serving-threads is how many threads serve HTTP (default: one per core), each with its own
connections and instances; jobs, the sweep and the Redis trigger run beside them.
--max-instances is how many instances (HTTP and jobs, all components) may exist at once
(Spin: 1000); their memories come from a pool reserved at start. A request that would need
one more is answered 503 with Retry-After.
--migrate-only applies the migrations and exits (e.g. --data-dir .spin for the Spin CLI's own
default database, .spin/sqlite_db.db; or PostgreSQL when SPIN_VARIABLE_DATABASE_URL is set).
Every setting is checked before serving (check-config alone: the check, every problem listed).
When the variable database_url is set (postgres://user@host:port/db), the components keep
their metadata there and --migrations applies DIR/*.sql to it as well.";

struct Args {
    manifest: PathBuf,
    listen: SocketAddr,
    data_dir: PathBuf,
    cache_dir: PathBuf,
    migrations: Option<PathBuf>,
    ready_file: Option<PathBuf>,
    migrate_only: bool,
    sweep_interval: u64,
    serving_threads: usize,
    max_instances: u32,
}

/// A flag's whole-number value within `range`; the error names the flag, the value and the range.
fn count_in(flag: &str, value: &str, range: std::ops::RangeInclusive<usize>) -> Result<usize> {
    value.parse().ok().filter(|n| range.contains(n)).with_context(|| format!("{flag} {value}: {} to {}", range.start(), range.end()))
}

fn args() -> Result<Args> {
    let mut a = Args {
        manifest: "spin.toml".into(),
        listen: "127.0.0.1:3000".parse()?,
        data_dir: ".vaultx/data".into(),
        cache_dir: ".vaultx/cache".into(),
        migrations: None,
        ready_file: None,
        migrate_only: false,
        sweep_interval: 5,
        serving_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        max_instances: compile::MAX_INSTANCES,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--migrate-only" {
            a.migrate_only = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--manifest" => a.manifest = value.into(),
            "--listen" => a.listen = value.parse().with_context(|| format!("--listen {value}"))?,
            "--data-dir" => a.data_dir = value.into(),
            "--cache-dir" => a.cache_dir = value.into(),
            "--migrations" => a.migrations = Some(value.into()),
            "--ready-file" => a.ready_file = Some(value.into()),
            "--instance-concurrency" => {
                server::INSTANCE_CONCURRENCY.store(count_in(&flag, &value, 1..=1024)?, std::sync::atomic::Ordering::Relaxed);
            }
            "--max-instance-reuse-count" => {
                server::INSTANCE_REUSE.store(count_in(&flag, &value, 1..=1_000_000)?, std::sync::atomic::Ordering::Relaxed);
            }
            "--serving-threads" => {
                a.serving_threads = count_in(&flag, &value, 1..=256)?;
            }
            "--max-instances" => {
                a.max_instances = count_in(&flag, &value, 1..=10_000)? as u32;
            }
            "--sweep-interval" => a.sweep_interval = value.parse().with_context(|| format!("--sweep-interval {value}: whole seconds"))?,
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    Ok(a)
}

/// `vaultx-runtime check-config [--manifest spin.toml | --wrangler wrangler.toml]`: the
/// start-up check alone, before `spin up` or `wrangler deploy`. For the Spin manifest the
/// variables come from the environment (`SPIN_VARIABLE_<NAME>`) and the defaults; for the
/// Worker from wrangler.toml's `[vars]` and the environment (`<NAME>`, as its secrets).
fn check_config() -> Result<()> {
    let mut args = std::env::args().skip(2);
    let (flag, path) = (args.next().unwrap_or_else(|| "--manifest".into()), args.next().unwrap_or_else(|| "spin.toml".into()));
    match flag.as_str() {
        "--manifest" => {
            let n = manifest::check_settings(std::path::Path::new(&path), &|k| std::env::var(k).ok())?;
            println!("vaultx-runtime: {path}: {n} variables, configuration OK");
        }
        "--wrangler" => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            let raw: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {path}"))?;
            let vars: std::collections::HashMap<String, String> = raw
                .get("vars")
                .and_then(|v| v.as_table())
                .map(|t| t.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
                .unwrap_or_default();
            let get = |name: &str| std::env::var(name.to_ascii_uppercase()).ok().or_else(|| vars.get(name).cloned());
            // On Workers the home store is the R2 binding BLOBS, named like the Spin label.
            let problems = vaultx_core::config::check(&get, &|_| true, &["blobs".to_owned()]);
            if !problems.is_empty() {
                bail!("{path}: the configuration has {} problem(s); set each in [vars] or as a secret (wrangler secret put NAME):\n  - {}", problems.len(), problems.join("\n  - "));
            }
            println!("vaultx-runtime: {path}: configuration OK");
        }
        _ => bail!("usage: vaultx-runtime check-config [--manifest spin.toml | --wrangler wrangler.toml]"),
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        guest_stdout::flush();
        eprintln!("vaultx-runtime: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let started = Instant::now();
    if std::env::args().nth(1).as_deref() == Some("check-config") {
        return check_config();
    }
    let args = args()?;
    if args.migrate_only {
        let dir = args.migrations.as_ref().context("--migrate-only needs --migrations DIR")?;
        if let Some(url) = std::env::var("SPIN_VARIABLE_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            for name in migrate::apply_postgres(&url, dir).await? {
                println!("vaultx-runtime: applied migration {name} to PostgreSQL");
            }
            return Ok(());
        }
        let stores = stores::Stores::open(&args.data_dir)?;
        let mut db = stores.open_sqlite("default")?;
        for name in migrate::apply(&mut db, dir)? {
            println!("vaultx-runtime: applied migration {name}");
        }
        return Ok(());
    }
    // Bound first: the listen address is the default public origin of signed URLs.
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    let env = |k: &str| std::env::var(k).ok().or_else(|| (k == "SPIN_VARIABLE_PUBLIC_URL").then(|| format!("http://{local}")));
    // Every setting checked before anything is served; all problems reported at once.
    let app = manifest::load_checked(&args.manifest, &env)?;
    // A component told to keep its metadata on PostgreSQL must be granted that server, or
    // every request it serves would fail: say so now, once.
    for c in app.components.values() {
        if let Some(url) = c.variables.get("database_url").filter(|u| !u.is_empty()) {
            host::postgres::permitted(&c.allowed_outbound_hosts, url)
                .map_err(|e| anyhow::anyhow!("component {}: database_url: {e} (set database_host to postgres://host:port)", c.id))?;
        }
    }

    let stores = Arc::new(stores::Stores::open(&args.data_dir)?);
    if let Some(dir) = &args.migrations {
        let mut db = stores.open_sqlite("default")?;
        for name in migrate::apply(&mut db, dir)? {
            println!("vaultx-runtime: applied migration {name}");
        }
        // The metadata is on PostgreSQL when the application's database_url says so.
        if let Some(Some(url)) = app.variables.get("database_url").filter(|u| u.as_deref().is_some_and(|u| !u.is_empty())) {
            for name in migrate::apply_postgres(url, dir).await? {
                println!("vaultx-runtime: applied migration {name} to PostgreSQL");
            }
        }
    }

    let engine = compile::engine(args.max_instances)?;
    let linker = server::linker(&engine)?;
    let redis_clients = Arc::new(host::redis::Clients::default());
    let pg_pools = Arc::new(host::postgres::Pools::default());
    let subscribed: std::collections::HashSet<&str> = app.redis.iter().map(|t| t.component.as_str()).collect();
    let mut index = std::collections::HashMap::new();
    let mut handlers = Vec::new();
    let mut subscribers = std::collections::HashMap::new();
    // A cold cache: every component not compiled yet is compiled now, on every core at once.
    // Cranelift spreads one component's functions over the cores, but a component is small
    // and mostly a few large functions: compiled one after another, a cold start of 43 left a
    // core idle most of the time. The loop below then finds every one cached.
    let uncached: Vec<&std::path::Path> =
        app.components.values().map(|c| c.source.as_path()).filter(|source| compile::cached(&engine, source, &args.cache_dir).is_none()).collect();
    if !uncached.is_empty() {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(uncached.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| -> Result<()> {
            let compilers: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                        while let Some(source) = uncached.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                            compile::load(&engine, source, &args.cache_dir)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for compiler in compilers {
                compiler.join().map_err(|_| anyhow::anyhow!("a compiling thread panicked"))??;
            }
            Ok(())
        })?;
    }
    // The serving line counts those as compiled, not as found in the cache.
    let (mut hits, mut misses) = (0usize, uncached.len());
    let linker = Arc::new(linker);
    let metrics = Arc::new(vaultx_core::metrics::RequestMetrics::default());
    for (id, c) in &app.components {
        // Compiles or loads the component (the cached artefact, or — if it went missing or
        // stale since start — the full load) and links it: what every loader below wraps.
        let link = {
            let (engine, linker, id, source, cache_dir) = (engine.clone(), linker.clone(), id.clone(), c.source.clone(), args.cache_dir.clone());
            move || -> Result<(wasmtime::component::InstancePre<server::Host>, compile::Cache)> {
                let (component, cache) = compile::load(&engine, &source, &cache_dir)?;
                let pre = linker.instantiate_pre(&component).map_err(|e| anyhow::anyhow!("component {id}: linking: {e:#}"))?;
                Ok((pre, cache))
            }
        };
        // A component whose artefact is cached is loaded when first needed, or by the
        // background `preload`; one that must be compiled is compiled now.
        let lazy = compile::cached(&engine, &c.source, &args.cache_dir).is_some();
        let pre = if lazy {
            if !uncached.contains(&c.source.as_path()) {
                hits += 1;
            }
            None
        } else {
            let (pre, cache) = link()?;
            match cache {
                compile::Cache::Hit => hits += 1,
                compile::Cache::Miss => misses += 1,
            }
            Some(pre)
        };
        let grants = Arc::new(host::Grants {
            sqlite_databases: c.sqlite_databases.clone(),
            key_value_stores: c.key_value_stores.clone(),
            variables: c.variables.clone(),
            allowed_outbound_hosts: c.allowed_outbound_hosts.clone(),
        });
        let (shared, redis, pg) = (stores.clone(), redis_clients.clone(), pg_pools.clone());
        let make_spin = move || host::SpinCtx { grants: grants.clone(), stores: shared.clone(), redis: redis.clone(), pg: pg.clone() };
        let allowed_outbound_hosts = Arc::new(c.allowed_outbound_hosts.clone());
        if subscribed.contains(id.as_str()) {
            let loaded = match pre {
                Some(pre) => tokio::sync::OnceCell::new_with(Some(redis_trigger::subscriber_pre(pre).with_context(|| format!("component {id}"))?)),
                None => tokio::sync::OnceCell::new(),
            };
            let id_l = id.clone();
            let load = move || -> Result<redis_trigger::SubscriberPre> { redis_trigger::subscriber_pre(link()?.0).with_context(|| format!("component {id_l}")) };
            subscribers.insert(
                id.clone(),
                Arc::new(redis_trigger::Subscriber {
                    component: id.clone(),
                    pre: loaded,
                    load: Box::new(load),
                    make_host: Box::new(move || server::Host::new(allowed_outbound_hosts.clone(), make_spin())),
                    running: Arc::new(tokio::sync::Semaphore::new(server::MAX_CONCURRENT_PER_INSTANCE)),
                    started: metrics.instances_started(id),
                }),
            );
            continue;
        }
        let service = |id: &str, pre| {
            wasmtime_wasi_http::p3::bindings::ServicePre::new(pre)
                .map(ProxyPre::P3)
                .map_err(|e| anyhow::anyhow!("component {id}: not a wasi:http/handler@0.3 component: {e:#}"))
        };
        let loaded = Arc::new(match pre {
            Some(pre) => tokio::sync::OnceCell::new_with(Some(service(id, pre)?)),
            None => tokio::sync::OnceCell::new(),
        });
        let id_l = id.clone();
        let load = move || -> Result<ProxyPre<server::Host>> { service(&id_l, link()?.0) };
        index.insert(id.clone(), handlers.len());
        handlers.push(server::ComponentState {
            id: id.clone(),
            engine: engine.clone(),
            pre: loaded,
            load: Arc::new(load),
            make_spin: Arc::new(make_spin),
            allowed_outbound_hosts,
            memory: server::MemoryPeak { peak: Default::default(), gauge: metrics.memory_peak(id) },
            started: metrics.instances_started(id),
        });
    }
    let routes = app
        .routes
        .iter()
        .map(|r| vaultx_core::router::Route::parse(&r.route, index[&r.component]).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let mut components = vec![String::new(); index.len()];
    for (id, i) in &index {
        components[*i] = id.clone();
    }
    let (router, components) = (Arc::new(vaultx_core::router::Router::new(routes)), Arc::new(components));
    // One serving thread per core, each a single-threaded runtime with its own handlers and
    // instances, as nginx has one worker per core: a request never changes threads between its
    // connection and the instance answering it (with one shared pool of threads it did so twice
    // per request, each time a futex wake-up and often an interrupt to the other core).
    guest_stdout::start_flushing()?;
    let serving: Vec<(tokio::runtime::Handle, Arc<server::App>)> = (0..args.serving_threads)
        .map(|n| {
            let app = Arc::new(server::App {
                router: router.clone(),
                handlers: handlers.iter().cloned().map(ProxyHandler::new).collect(),
                components: components.clone(),
                metrics: metrics.clone(),
                engine: engine.clone(),
                max_instances: args.max_instances,
            });
            // A thread with nothing left to do writes out the components' log lines first.
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().on_thread_park(guest_stdout::flush).build()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new().name(format!("serve-{n}")).spawn(move || runtime.block_on(std::future::pending::<()>()))?;
            Ok((handle, app))
        })
        .collect::<Result<_>>()?;

    // The Redis trigger: one subscriber per address, each channel to its components.
    let mut by_address: std::collections::HashMap<String, std::collections::HashMap<String, Vec<Arc<redis_trigger::Subscriber>>>> = Default::default();
    for t in app.redis.iter().filter(|t| {
        let skip = t.address.is_empty();
        if skip {
            println!("vaultx-runtime: {} has no Redis address; it runs on the sweep alone", t.component);
        }
        !skip
    }) {
        by_address.entry(t.address.clone()).or_default().entry(t.channel.clone()).or_default().push(subscribers[&t.component].clone());
    }
    for (address, channels) in by_address {
        tokio::spawn(redis_trigger::listen(engine.clone(), address, channels));
    }
    if args.sweep_interval > 0 && !subscribers.is_empty() {
        tokio::spawn(sweep(engine.clone(), subscribers.values().cloned().collect(), std::time::Duration::from_secs(args.sweep_interval)));
    }

    println!(
        "vaultx-runtime: {} serving {} routes from {} components on http://{local}, {} redis-triggered (compiled {misses}, cached {hits}; ready in {} ms)",
        app.name,
        app.routes.len(),
        app.components.len(),
        subscribers.len(),
        started.elapsed().as_millis()
    );
    if let Some(file) = &args.ready_file {
        std::fs::write(file, format!("http://{local}\n"))?;
    }

    let (runtime, first, triggered) = (tokio::runtime::Handle::current(), serving[0].1.clone(), subscribers.values().cloned().collect());
    std::thread::Builder::new().name("preload".into()).spawn(move || {
        // Background work: the first requests, and their own lazy loads, go first.
        background_priority();
        runtime.block_on(preload(first, triggered));
    })?;

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut next = 0;
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => { eprintln!("vaultx-runtime: accept: {e}"); continue; }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        // Round robin over the serving threads; the connection lives on its thread's reactor.
        next = (next + 1) % serving.len();
        let (thread, served) = &serving[next];
        let served = served.clone();
        let Ok(stream) = stream.into_std() else { continue };
        thread.spawn(async move {
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { return };
            let service = hyper::service::service_fn(move |req| {
                let served = served.clone();
                async move { Ok::<_, std::convert::Infallible>(server::handle(served, req, client, local).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(parse_errors::ProblemOnParseError::new(stream)), service)
                .await;
        });
    }
    // Bounded: a stop must not hang on a store that cannot finish.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stores.close_kv()).await;
    guest_stdout::flush();
    println!("vaultx-runtime: stopped");
    Ok(())
}

/// Lowers the calling thread's priority to nice 10, for background work (the preload, the
/// key-value checkpoints): on a busy machine it takes the cores' spare time, about a tenth of
/// a core when every core is taken, not a request's turn.
pub fn background_priority() {
    // SAFETY: setpriority on this thread's own id; no memory is passed.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
}

/// Loads, once serving has begun, every component not loaded yet, one at a time, on a
/// low-priority thread of its own (a request for one still loading waits for it). A component that cannot be loaded stops the runtime,
/// as it would have stopped it at start.
async fn preload(served: Arc<server::App>, triggered: Vec<Arc<redis_trigger::Subscriber>>) {
    for handler in &served.handlers {
        tokio::task::yield_now().await;
        if let Err(e) = handler.state().ready().await {
            eprintln!("vaultx-runtime: component {}: {e:#}", handler.state().id);
            guest_stdout::flush();
            std::process::exit(1);
        }
    }
    for subscriber in &triggered {
        tokio::task::yield_now().await;
        if let Err(e) = subscriber.ready().await {
            eprintln!("vaultx-runtime: component {}: {e:#}", subscriber.component);
            guest_stdout::flush();
            std::process::exit(1);
        }
    }
    // Compiling components (a cold cache) leaves glibc's arenas holding the memory the
    // compiler freed, which they would keep for the process's life (45 MB of the resident
    // figure after a start that compiled all 43). Handed back once here.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; no memory is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The runtime's timer: every `every`, each Redis-triggered component gets the message
/// `sweep`, delivered directly (no Redis needed) and never twice at once per component.
async fn sweep(engine: wasmtime::Engine, subscribers: Vec<Arc<redis_trigger::Subscriber>>, every: std::time::Duration) {
    let busy: Vec<Arc<std::sync::atomic::AtomicBool>> = subscribers.iter().map(|_| Default::default()).collect();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (s, busy) in subscribers.iter().zip(&busy) {
            if busy.swap(true, std::sync::atomic::Ordering::AcqRel) {
                continue;
            }
            let (s, busy, engine) = (s.clone(), busy.clone(), engine.clone());
            tokio::spawn(async move {
                s.deliver(engine, b"sweep".to_vec()).await;
                busy.store(false, std::sync::atomic::Ordering::Release);
            });
        }
    }
}
