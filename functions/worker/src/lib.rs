//! VaultX as one Cloudflare Worker: the same route handlers the Spin components bind, behind
//! one router over `vaultx_api::routes::TABLE`, on the Workers adapter (D1, KV, R2).

use std::sync::OnceLock;
use vaultx_api::routes::{TABLE, dispatch};
use vaultx_core::http::serve;
use vaultx_core::router::{Route, Router};
use vaultx_worker::{WorkerPlatform, into_response, read_request};
use worker::{Context, Env, Request, Response, Result, event};

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        Router::new(TABLE.iter().enumerate().map(|(i, r)| Route::parse(r.path, i).expect("the route table is valid")).collect())
    })
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let allowed_hosts: Vec<String> = env
        .var(vaultx_worker::ALLOWED_HOSTS)
        .map(|v| v.to_string().split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect())
        .unwrap_or_default();
    let platform = WorkerPlatform::new(env);
    let path = req.path();
    // The table ends with "/...", so every path has a route.
    let route = router().route(&path).map_or(TABLE.len() - 1, |m| m.route.target);
    let read = read_request(req, TABLE[route].max_body, &allowed_hosts).await;
    let response = serve(read, |request| dispatch(TABLE[route].function, &platform, request)).await;
    into_response(&platform, response)
}
