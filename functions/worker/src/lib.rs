//! VaultX as one Cloudflare Worker: the same route handlers the Spin components bind, behind
//! one router over `vaultx_api::routes::TABLE`, on the Workers adapter (D1, KV, R2); the same
//! job kinds, as the consumer of the `JOBS` Queue and on a Cron Trigger (the sweep).
//!
//! # In detail
//!
//! In detail (depends on vaultx-worker, vaultx-api): The one Cloudflare Worker: `#[event(fetch)]`
//! routes over `vaultx_api::routes::TABLE` (the same table `spin.toml` is checked against) and
//! calls `routes::dispatch`; `#[event(queue)]` stores a batch's access records in one D1
//! transaction (`audit::insert_all`) and runs job wake-ups through `jobs::dispatch`;
//! `#[event(scheduled)]` is the sweep. It counts requests per isolate (`vaultx_core::metrics`) and
//! appends them to `health-metrics`' answer.

use std::sync::OnceLock;
use vaultx_api::routes::{TABLE, dispatch};
use vaultx_core::router::{Route, Router};
use vaultx_worker::{JobMessage, WorkerPlatform, into_response, read_request};
use worker::{Context, Env, MessageBatch, MessageExt, Request, Response, Result, ScheduleContext, ScheduledEvent, event};

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        Router::new(TABLE.iter().enumerate().map(|(i, r)| Route::parse(r.path, i).expect("the route table is valid")).collect())
    })
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let allowed_hosts: Vec<String> = env
        .var(vaultx_worker::ALLOWED_HOSTS)
        .map(|v| v.to_string().split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect())
        .unwrap_or_default();
    let platform = WorkerPlatform::with_context(env, ctx);
    let path = req.path();
    // The table ends with "/...", so every path has a route.
    let route = router().route(&path).map_or(TABLE.len() - 1, |m| m.route.target);
    let started_ms = worker::Date::now().as_millis();
    let method = req.method().to_string();
    let (function, path) = (TABLE[route].function, TABLE[route].path);
    // The catch-all is the S3 door, as on Spin (vaultx-s3), with its own body limit.
    let s3 = path == vaultx_s3::ROUTE;
    let read = read_request(req, if s3 { vaultx_s3::MAX_BODY } else { TABLE[route].max_body }, &allowed_hosts).await;
    let bytes_in = read.as_ref().map_or(0, |r| r.body.len());
    let mut response = if s3 {
        vaultx_api::audit::audited(&platform, function, path, read, |req| vaultx_s3::handle(&platform, req)).await
    } else {
        dispatch(function, &platform, read).await
    };
    // Counted here, per isolate (workerd keeps no memory across isolates): a scrape sees the
    // isolate that answers it. Cloudflare's own analytics count across them.
    let metrics = request_metrics();
    metrics.observe(function, path, &method, response.status, (worker::Date::now().as_millis() - started_ms) as f64 / 1000.0);
    metrics.bytes_in(function).inc_by(bytes_in as u64);
    if function == "health-metrics" && method == "GET" && response.status == 200 {
        if let vaultx_core::http::Body::Bytes(body) = &mut response.body {
            body.extend_from_slice(metrics.render().as_bytes());
        }
    }
    metrics.bytes_out(function).inc_by(response.body.len());
    into_response(&platform, response)
}

fn request_metrics() -> &'static vaultx_core::metrics::RequestMetrics {
    static METRICS: OnceLock<vaultx_core::metrics::RequestMetrics> = OnceLock::new();
    METRICS.get_or_init(Default::default)
}

/// Job wake-ups from the Queue (`[[queues.consumers]]`): each message runs its job through
/// the outbox (claim, run, settle: retries and `dead` are the outbox's, in SQL). A message is
/// retried by the Queue only when the job could not even be claimed or recorded (the stores
/// failed); after `max_retries` it goes to the dead-letter queue, and the job still waits in
/// the outbox for the sweep.
///
/// The batch's access records (the downloads') are stored together in one D1 transaction and
/// acknowledged together; if that fails the Queue delivers them again (their ids make a
/// second delivery land once).
#[event(queue)]
async fn queue(batch: MessageBatch<JobMessage>, env: Env, _ctx: Context) -> Result<()> {
    let platform = WorkerPlatform::new(env);
    let (records, jobs): (Vec<_>, Vec<_>) = batch.messages()?.into_iter().partition(|m| m.body().kind == vaultx_worker::AUDIT_RECORD);
    if !records.is_empty() {
        let events: Vec<vaultx_api::audit::Event> = records
            .iter()
            .filter_map(|m| match serde_json::from_str(m.body().record.as_deref().unwrap_or_default()) {
                Ok(event) => Some(event),
                Err(e) => {
                    worker::console_error!("access record {} is unreadable ({e}); dropped", m.body().id);
                    None
                }
            })
            .collect();
        let stored = match vaultx_core::ports::Platform::metadata(&platform).await {
            Ok(db) => vaultx_api::audit::insert_all(&db, &events).await,
            Err(e) => Err(vaultx_api::store::store_failure(e)),
        };
        match stored {
            Ok(()) => records.iter().for_each(|m| m.ack()),
            Err(problem) => {
                worker::console_error!("{} access records not stored ({problem}); the Queue delivers them again", records.len());
                records.iter().for_each(|m| m.retry());
            }
        }
    }
    for message in jobs {
        let JobMessage { kind, id, .. } = message.body();
        match vaultx_api::jobs::dispatch(&platform, kind, id.as_bytes()).await {
            Ok(()) => message.ack(),
            Err(problem) => {
                worker::console_error!("job {id} ({kind}): {problem}");
                message.retry();
            }
        }
    }
    Ok(())
}

/// The sweep (`[triggers] crons`): every kind runs what is due — lost wake-ups, expired
/// leases, retries whose backoff is over — and collects replaced blocks past their grace.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let platform = WorkerPlatform::new(env);
    for kind in vaultx_api::jobs::KINDS {
        if let Err(problem) = vaultx_api::jobs::dispatch(&platform, kind, vaultx_api::outbox::SWEEP).await {
            worker::console_error!("sweep of {kind} jobs: {problem}");
        }
    }
}
