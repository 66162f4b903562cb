//! One module per route. `functions/<name>` binds `routes::<name>` and nothing else.

/// The prologue the signed-in routes share.
pub mod call;
pub use call::{Call, private_json};

pub mod access_key;
pub mod access_keys;
pub mod admin_audit;
pub mod admin_integrity;
pub mod admin_job_retry;
pub mod admin_jobs;
pub mod admin_user_quota;
pub mod auth_login;
pub mod auth_register;
pub mod file;
pub mod file_archive;
pub mod file_audit;
pub mod file_chunk;
pub mod file_chunks;
pub mod file_complete;
pub mod file_download;
pub mod file_metadata;
pub mod file_restore_archive;
pub mod file_signed_url;
pub mod file_tag;
pub mod file_tags;
pub mod file_version;
pub mod file_version_restore;
pub mod file_versions;
pub mod files;
pub mod files_search;
pub mod files_usage;
pub mod health;
pub mod health_liveness;
pub mod health_metrics;
pub mod health_readiness;
pub mod not_found;
pub mod openapi;
pub mod replication_policy;
pub mod replication_status;
pub mod storage_nodes;
pub mod storage_region;
pub mod storage_region_deactivate;
pub mod storage_region_nodes;
pub mod storage_regions;
pub mod users_me;

use vaultx_core::http::{ApiRequest, ApiResponse};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

/// The path pattern of a route, by its function's name (`file-download`) or its module's
/// (`file_download`); `""` for a name no route has. The Spin components, which know their module,
/// name their log lines' route with it.
pub fn pattern(function: &str) -> &'static str {
    let same = |name: &str| name.len() == function.len() && name.bytes().zip(function.bytes()).all(|(a, b)| a == b || (a == b'-' && b == b'_'));
    TABLE.iter().find(|r| same(r.function)).map_or("", |r| r.path)
}

/// The body limit of routes that take a small JSON document.
pub const JSON_BODY_LIMIT: usize = 16 * 1024;

/// One route: its path pattern (Spin syntax), the function serving it, its body limit.
pub struct Route {
    pub path: &'static str,
    pub function: &'static str,
    pub max_body: usize,
}

macro_rules! route_table {
    ($($path:literal => $function:literal: $module:ident),* $(,)?) => {
        /// Every route. On Spin each is its own component (spin.toml, checked against this
        /// table by a test); on Cloudflare Workers one router dispatches over it.
        pub const TABLE: &[Route] = &[$(Route { path: $path, function: $function, max_body: $module::MAX_BODY }),*];

        /// Runs the handler of `function` (a name from [`TABLE`]) on the request the adapter
        /// read, under [`crate::audit::audited`]; unknown names are the catch-all's.
        pub async fn dispatch<P: Platform>(function: &str, p: &P, read: Result<ApiRequest, Problem>) -> ApiResponse {
            match function {
                $($function => crate::audit::audited(p, $function, $path, read, |req| $module::handle(p, req)).await,)*
                _ => crate::audit::audited(p, "s3", pattern("s3"), read, |req| not_found::handle(p, req)).await,
            }
        }
    };
}

route_table! {
    "/api/auth/register" => "auth-register": auth_register,
    "/api/auth/login" => "auth-login": auth_login,
    "/api/users/me" => "users-me": users_me,
    "/api/users/me/access-keys" => "access-keys": access_keys,
    "/api/users/me/access-keys/:keyId" => "access-key": access_key,
    "/api/files" => "files": files,
    "/api/files/stats/usage" => "files-usage": files_usage,
    "/api/files/search" => "files-search": files_search,
    "/api/files/:id" => "file": file,
    "/api/files/:id/chunks" => "file-chunks": file_chunks,
    "/api/files/:id/chunks/:index" => "file-chunk": file_chunk,
    "/api/files/:id/complete" => "file-complete": file_complete,
    "/api/files/:id/signed-url" => "file-signed-url": file_signed_url,
    "/api/files/:id/versions" => "file-versions": file_versions,
    "/api/files/:id/versions/:version" => "file-version": file_version,
    "/api/files/:id/versions/:version/restore" => "file-version-restore": file_version_restore,
    "/api/files/:id/archive" => "file-archive": file_archive,
    "/api/files/:id/restore-archive" => "file-restore-archive": file_restore_archive,
    "/api/files/:id/tags" => "file-tags": file_tags,
    "/api/files/:id/tags/:tag" => "file-tag": file_tag,
    "/api/files/:id/metadata" => "file-metadata": file_metadata,
    "/api/files/:id/audit" => "file-audit": file_audit,
    "/api/files/download/:token" => "file-download": file_download,
    "/api/admin/integrity" => "admin-integrity": admin_integrity,
    "/api/admin/jobs" => "admin-jobs": admin_jobs,
    "/api/admin/jobs/:id/retry" => "admin-job-retry": admin_job_retry,
    "/api/admin/users/:id/quota" => "admin-user-quota": admin_user_quota,
    "/api/admin/audit" => "admin-audit": admin_audit,
    "/api/storage/regions" => "storage-regions": storage_regions,
    "/api/storage/regions/:id" => "storage-region": storage_region,
    "/api/storage/regions/:id/deactivate" => "storage-region-deactivate": storage_region_deactivate,
    "/api/storage/regions/:regionId/nodes" => "storage-region-nodes": storage_region_nodes,
    "/api/storage/nodes" => "storage-nodes": storage_nodes,
    "/api/replication/files/:fileId/policy" => "replication-policy": replication_policy,
    "/api/replication/files/:fileId/status" => "replication-status": replication_status,
    "/health" => "health": health,
    "/health/liveness" => "health-liveness": health_liveness,
    "/health/metrics" => "health-metrics": health_metrics,
    "/health/readiness" => "health-readiness": health_readiness,
    "/api/openapi.json" => "openapi": openapi,
    // The catch-all: the S3 door (crate `vaultx-s3`; on Spin the component `functions/s3`, on
    // the Worker called by its router), which answers every request without an S3 signature
    // as `not_found`. `dispatch` itself, which knows no S3, gives `not_found`.
    "/..." => "s3": not_found,
}

#[cfg(test)]
mod tests {
    #[test]
    fn spin_toml_lists_exactly_the_routes_of_the_table() {
        let manifest = include_str!("../../../../spin.toml");
        let mut in_manifest: Vec<(String, String)> = Vec::new();
        let mut route = None;
        for line in manifest.lines() {
            if let Some(r) = line.strip_prefix("route = ") {
                route = Some(r.trim_matches('"').to_owned());
            } else if let (Some(c), Some(r)) = (line.strip_prefix("component = "), route.take()) {
                in_manifest.push((r, c.trim_matches('"').to_owned()));
            }
        }
        let mut in_table: Vec<(String, String)> = super::TABLE.iter().map(|r| (r.path.to_owned(), r.function.to_owned())).collect();
        in_manifest.sort();
        in_table.sort();
        assert_eq!(in_manifest, in_table, "spin.toml and routes::TABLE disagree: run infra/spin-manifest.py after changing routes");
    }

    /// The contract and the code agree: the spec's paths are exactly the table's (so
    /// spin.toml's and the Worker's), and each route answers exactly the spec's methods —
    /// any other is 405.
    #[test]
    fn the_openapi_contract_lists_exactly_the_routes_and_their_methods() {
        use crate::testing::{TestPlatform, run};
        let spec: serde_json::Value = serde_json::from_str(super::openapi::SPEC).expect("openapi.json is JSON");
        assert_eq!(spec["openapi"], "3.1.0");
        let paths = spec["paths"].as_object().expect("paths");
        let openapi_path = |route: &str| route.split('/').map(|s| s.strip_prefix(':').map_or(s.to_owned(), |p| format!("{{{p}}}"))).collect::<Vec<_>>().join("/");
        let mut in_table: Vec<String> = super::TABLE.iter().filter(|r| r.path != "/...").map(|r| openapi_path(r.path)).collect();
        let mut in_spec: Vec<String> = paths.keys().cloned().collect();
        in_table.sort();
        in_spec.sort();
        assert_eq!(in_spec, in_table, "shared/api/openapi.json and routes::TABLE disagree: update infra/openapi.py");
        let p = TestPlatform::new();
        for route in super::TABLE.iter().filter(|r| r.path != "/...") {
            let documented = &paths[&openapi_path(route.path)];
            let path = route.path.split('/').map(|s| if s.starts_with(':') { "0" } else { s }).collect::<Vec<_>>().join("/");
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                let req = super::ApiRequest { method: method.into(), path: path.clone(), ..Default::default() };
                let status = run(super::dispatch(route.function, &p, Ok(req))).status;
                let in_spec = documented.get(method.to_ascii_lowercase()).is_some();
                assert_eq!(status == 405, !in_spec, "{method} {}: answered {status}, and the spec {} it", route.path, if in_spec { "lists" } else { "does not list" });
            }
        }
    }

    #[test]
    fn every_function_crate_binds_its_route() {
        for route in super::TABLE {
            let dir = format!("{}/../../functions/{}/src/lib.rs", env!("CARGO_MANIFEST_DIR"), route.function);
            let binding = std::fs::read_to_string(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
            let module = route.function.replace('-', "_");
            let expected = if route.path == "/..." { "vaultx_spin::route!(vaultx_s3 as s3);".to_owned() } else { format!("vaultx_spin::route!(vaultx_api::routes::{module});") };
            assert_eq!(binding.trim(), expected, "{dir}");
        }
    }

    #[test]
    fn a_component_finds_its_route_pattern_by_its_module_name() {
        for route in super::TABLE {
            assert_eq!(super::pattern(route.function), route.path);
            assert_eq!(super::pattern(&route.function.replace('-', "_")), route.path, "{}", route.function);
        }
        assert_eq!(super::pattern("file_downloads"), "");
        assert_eq!(super::pattern("s3"), "/...");
    }
}
