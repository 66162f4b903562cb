//! Regions and storage nodes. A region (`us-west-1`) is a place blocks live; a node is one
//! blob store of a region, named by the kind and binding the deployment gives it (a Spin
//! key-value label, a Workers R2 binding). The deployment says which stores exist — a node
//! may only name one that opens ([`Platform::node_blobs`]) — and these rows say which region
//! each serves. Administrators only (`admin_emails`).

use crate::store::store_failure;
use serde::Serialize;
use vaultx_core::guard;
use vaultx_core::ports::{Blobs, Kv, Platform, Row, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::{FieldError, ProblemKind};
use vaultx_core::Problem;

pub const ACTIVE: &str = "active";
pub const DEACTIVATED: &str = "deactivated";
/// The kinds of blob store a node can name; a deployment has some of them.
pub const STORE_KINDS: &[&str] = &["key-value", "s3", "r2"];
/// The largest capacity a node may declare: JSON numbers are exact up to 2^53.
pub const MAX_CAPACITY: u64 = 1 << 53;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub id: String,
    pub code: String,
    pub name: String,
    pub status: String,
    #[serde(serialize_with = "vaultx_core::time::serialize_rfc3339")]
    pub created_at: i64,
    #[serde(serialize_with = "vaultx_core::time::serialize_rfc3339")]
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    pub region_id: String,
    pub name: String,
    pub kind: String,
    pub store: String,
    pub capacity_bytes: i64,
    pub status: String,
    #[serde(serialize_with = "vaultx_core::time::serialize_rfc3339")]
    pub created_at: i64,
}

const REGION_COLUMNS: &str = "id, code, name, status, created_at, updated_at";
const NODE_COLUMNS: &str = "id, region_id, name, kind, store, capacity_bytes, status, created_at";

fn region(r: &Row) -> Result<Region, StoreError> {
    Ok(Region {
        id: r.text(0)?.to_owned(),
        code: r.text(1)?.to_owned(),
        name: r.text(2)?.to_owned(),
        status: r.text(3)?.to_owned(),
        created_at: r.int(4)?,
        updated_at: r.int(5)?,
    })
}

fn node(r: &Row) -> Result<Node, StoreError> {
    Ok(Node {
        id: r.text(0)?.to_owned(),
        region_id: r.text(1)?.to_owned(),
        name: r.text(2)?.to_owned(),
        kind: r.text(3)?.to_owned(),
        store: r.text(4)?.to_owned(),
        capacity_bytes: r.int(5)?,
        status: r.text(6)?.to_owned(),
        created_at: r.int(7)?,
    })
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// A region code: 2 to 32 characters, lowercase letters, digits and single hyphens, starting
/// with a letter (`us-west-1`, `eu-central-1`, `local`). Never the shape of an id, so a route
/// can take either.
pub fn check_code(code: &str) -> Result<(), String> {
    let shape = code.len() >= 2
        && code.len() <= 32
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && !code.ends_with('-')
        && !code.contains("--")
        && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if shape { Ok(()) } else { Err("2 to 32 lowercase letters, digits and single hyphens, starting with a letter (us-west-1)".into()) }
}

/// A display name: 1 to 100 characters, no control characters, not only spaces.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        Err("1 to 100 characters, no control characters".into())
    } else {
        Ok(())
    }
}

/// A binding: 1 to 64 ASCII letters, digits and underscores (Spin labels, Workers bindings).
pub fn check_binding(store: &str) -> Result<(), String> {
    if (1..=64).contains(&store.len()) && store.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err("1 to 64 letters, digits and underscores: the store's binding in the deployment".into())
    }
}

/// Creates a region (active). A code already taken is 409.
pub async fn create<P: Platform>(p: &P, db: &impl Sql, code: &str, name: &str) -> Result<Region, Problem> {
    let mut errors = Vec::new();
    if let Err(m) = check_code(code) {
        errors.push(field("code", m));
    }
    if let Err(m) = check_name(name) {
        errors.push(field("name", m));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let now = p.now_ms();
    let r = Region { id: vaultx_core::ids::new_id(p), code: code.into(), name: name.into(), status: ACTIVE.into(), created_at: now, updated_at: now };
    let inserted = db
        .execute(
            &format!("INSERT INTO regions ({REGION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO NOTHING"),
            vec![r.id.clone().into(), r.code.clone().into(), r.name.clone().into(), r.status.clone().into(), SqlValue::Integer(now), SqlValue::Integer(now)],
        )
        .await
        .map_err(store_failure)?;
    if inserted == 0 {
        return Err(Problem::new(ProblemKind::Conflict, format!("a region with code {code:?} exists")));
    }
    Ok(r)
}

pub async fn list(db: &impl Sql) -> Result<Vec<Region>, Problem> {
    let rows = db.query(&format!("SELECT {REGION_COLUMNS} FROM regions ORDER BY code"), vec![]).await.map_err(store_failure)?;
    rows.iter().map(region).collect::<Result<_, _>>().map_err(store_failure)
}

/// A region by its id or its code (404 otherwise).
pub async fn find(db: &impl Sql, id_or_code: &str) -> Result<Region, Problem> {
    let rows = db
        .query(&format!("SELECT {REGION_COLUMNS} FROM regions WHERE id = ? OR code = ?"), vec![id_or_code.into(), id_or_code.into()])
        .await
        .map_err(store_failure)?;
    rows.first().map(region).transpose().map_err(store_failure)?.ok_or_else(|| Problem::not_found(format!("no region {id_or_code:?}")))
}

/// The region a `/api/storage/regions/:id…` request names (id or code, the fourth path
/// segment), for an administrator, with the metadata store it was read from.
pub async fn requested<P: Platform>(p: &P, req: &vaultx_core::http::ApiRequest, methods: &[&str]) -> Result<(P::Metadata, Region), Problem> {
    req.expect_method(methods)?;
    crate::auth::require_admin(p, req).await?;
    let id = req.segments().get(3).copied().unwrap_or("").to_owned();
    let db = p.metadata().await.map_err(store_failure)?;
    let region = find(&db, &id).await?;
    Ok((db, region))
}

/// Deactivates a region: no new blocks are written there from now on. Idempotent.
pub async fn deactivate<P: Platform>(p: &P, db: &impl Sql, r: &Region) -> Result<Region, Problem> {
    db.execute(
        "UPDATE regions SET status = ?, updated_at = ? WHERE id = ? AND status <> ?",
        vec![DEACTIVATED.into(), SqlValue::Integer(p.now_ms()), r.id.clone().into(), DEACTIVATED.into()],
    )
    .await
    .map_err(store_failure)?;
    // The edge reads no database: its readers skip a store with this marker (and read a copy
    // elsewhere). Written after the row, and again by every repeated request, so a crash
    // between is repaired by sending the request again.
    let kv = p.kv().await.map_err(store_failure)?;
    for n in nodes(db, Some(&r.id)).await? {
        kv.set(&vaultx_core::breaker::deactivated_key(&n.kind, &n.store), b"1").await.map_err(store_failure)?;
    }
    find(db, &r.id).await
}

/// What `POST /api/storage/nodes` declares.
pub struct NewNode<'a> {
    pub region: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub store: &'a str,
    pub capacity_bytes: u64,
}

/// Adds a node to an active region. Its store must be one the deployment has (it must open:
/// 422 otherwise) and serve no other node (409).
pub async fn add_node<P: Platform>(p: &P, db: &impl Sql, new: NewNode<'_>) -> Result<Node, Problem> {
    let mut errors = Vec::new();
    if let Err(m) = check_name(new.name) {
        errors.push(field("name", m));
    }
    if !STORE_KINDS.contains(&new.kind) {
        errors.push(field("kind", format!("one of {}", STORE_KINDS.join(", "))));
    }
    if let Err(m) = check_binding(new.store) {
        errors.push(field("store", m));
    }
    if new.capacity_bytes == 0 || new.capacity_bytes > MAX_CAPACITY {
        errors.push(field("capacityBytes", format!("a whole number of bytes from 1 to {MAX_CAPACITY}")));
    }
    let region = match find(db, new.region).await {
        Ok(r) => Some(r),
        Err(e) if e.status() == 404 => {
            errors.push(field("regionId", format!("no region {:?}", new.region)));
            None
        }
        Err(e) => return Err(e),
    };
    if errors.is_empty() {
        if let Err(e) = p.node_blobs(new.kind, new.store).await {
            let why = match e {
                StoreError::AccessDenied(_) => "is not one of this deployment's blob stores".to_owned(),
                _ => "does not open in this deployment".to_owned(),
            };
            errors.push(field("store", format!("the {} store {:?} {why}", new.kind, new.store)));
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let region = region.expect("validated");
    let n = Node {
        id: vaultx_core::ids::new_id(p),
        region_id: region.id.clone(),
        name: new.name.into(),
        kind: new.kind.into(),
        store: new.store.into(),
        capacity_bytes: new.capacity_bytes as i64,
        status: ACTIVE.into(),
        created_at: p.now_ms(),
    };
    let outcome = db
        .batch(vec![
            guard!("EXISTS (SELECT 1 FROM regions WHERE id = ? AND status = 'active')", &region.id),
            Statement {
                sql: "INSERT INTO storage_nodes (id, region_id, name, kind, store, capacity_bytes, status, created_at) \
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (store) DO NOTHING",
                params: vec![
                    n.id.clone().into(),
                    n.region_id.clone().into(),
                    n.name.clone().into(),
                    n.kind.clone().into(),
                    n.store.clone().into(),
                    SqlValue::Integer(n.capacity_bytes),
                    n.status.clone().into(),
                    SqlValue::Integer(n.created_at),
                ],
            },
            // The store serves no other node (ours is the row that went in).
            guard!("EXISTS (SELECT 1 FROM storage_nodes WHERE id = ?)", &n.id),
        ])
        .await;
    match outcome {
        Ok(()) => Ok(n),
        Err(StoreError::Conflict) => {
            let now = find(db, &region.id).await?;
            Err(if now.status != ACTIVE {
                Problem::new(ProblemKind::Conflict, format!("region {} is {}: it takes no new nodes", now.code, now.status))
            } else {
                Problem::new(ProblemKind::Conflict, format!("the {} store {:?} already serves a node", new.kind, new.store))
            })
        }
        Err(e) => Err(store_failure(e)),
    }
}

/// Nodes, oldest first: all of them, or one region's.
pub async fn nodes(db: &impl Sql, region_id: Option<&str>) -> Result<Vec<Node>, Problem> {
    let rows = db
        .query(
            &format!("SELECT {NODE_COLUMNS} FROM storage_nodes WHERE CAST(? AS TEXT) IS NULL OR region_id = ? ORDER BY created_at, id"),
            vec![region_id.into(), region_id.into()],
        )
        .await
        .map_err(store_failure)?;
    rows.iter().map(node).collect::<Result<_, _>>().map_err(store_failure)
}

/// What a node looks like to an administrator: its row, whether its store answers now, and
/// the bytes of live blocks it holds (the home store holds every block until replication
/// places copies elsewhere).
pub async fn node_view<P: Platform>(p: &P, db: &impl Sql, n: &Node, region_code: &str) -> Result<serde_json::Value, Problem> {
    let reachable = probe(p, &n.kind, &n.store).await;
    let used: i64 = if home(p).await? == (n.kind.clone(), n.store.clone()) {
        let rows = db
            .query("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs WHERE state = 'live'", vec![])
            .await
            .map_err(store_failure)?;
        rows.first().map(|r| r.int(0)).transpose().map_err(store_failure)?.unwrap_or(0)
    } else {
        0
    };
    let mut v = serde_json::to_value(n).map_err(|_| Problem::internal())?;
    v["regionCode"] = region_code.into();
    v["usedBytes"] = used.into();
    v["health"] = node_health(reachable).into();
    v["breaker"] = breaker_view(p, &n.kind, &n.store).await;
    Ok(v)
}

/// A node's health: whether its store answered a read just now.
pub fn node_health(reachable: bool) -> &'static str {
    if reachable { "reachable" } else { "unreachable" }
}

/// The home blob store, `(kind, binding)`: where chunks are written, and the store a region's
/// node names to be the home region.
pub async fn home<P: Platform>(p: &P) -> Result<(String, String), Problem> {
    p.home_store().await.map_err(store_failure)
}

/// The circuit breaker of a store as readers at the edge see it (`vaultx_core::breaker`):
/// `{state: closed | open | half-open, failures, retryAt?}`.
pub async fn breaker_view<P: Platform>(p: &P, kind: &str, store: &str) -> serde_json::Value {
    let settings = vaultx_core::breaker::settings(p).await;
    let read = match p.kv().await {
        Ok(kv) => vaultx_core::breaker::read(&kv, kind, store, p.now_ms(), settings).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match read {
        Ok(b) => b.view(),
        Err(e) => serde_json::json!({ "state": "unknown", "error": e }),
    }
}

/// Whether a store answers a read now.
pub async fn probe<P: Platform>(p: &P, kind: &str, store: &str) -> bool {
    match p.node_blobs(kind, store).await {
        Ok(blobs) => blobs.get("vaultx-probe").await.is_ok(),
        Err(_) => false,
    }
}

/// A region's health from its nodes: `healthy` when every node's store answers, `degraded`
/// when some do, `unavailable` when none does, `no-nodes` without nodes.
pub fn region_health(nodes: usize, reachable: usize) -> &'static str {
    match (nodes, reachable) {
        (0, _) => "no-nodes",
        (n, r) if n == r => "healthy",
        (_, 0) => "unavailable",
        _ => "degraded",
    }
}

/// A region's breaker from its nodes': `open` if any store's is, else `half-open` if any is,
/// else `closed`.
pub fn region_breaker<'a>(states: impl Iterator<Item = &'a str>) -> &'static str {
    let states: Vec<&str> = states.collect();
    if states.contains(&"open") {
        "open"
    } else if states.contains(&"half-open") {
        "half-open"
    } else {
        "closed"
    }
}

/// A region with its nodes (each as [`node_view`]) and its [`region_health`].
pub async fn region_view<P: Platform>(p: &P, db: &impl Sql, r: &Region) -> Result<serde_json::Value, Problem> {
    let mut nodes = Vec::new();
    for n in self::nodes(db, Some(&r.id)).await? {
        nodes.push(node_view(p, db, &n, &r.code).await?);
    }
    let reachable = nodes.iter().filter(|n| n["health"] == "reachable").count();
    let mut v = serde_json::to_value(r).map_err(|_| Problem::internal())?;
    v["health"] = region_health(nodes.len(), reachable).into();
    v["breaker"] = region_breaker(nodes.iter().map(|n| n["breaker"]["state"].as_str().unwrap_or("unknown"))).into();
    v["nodes"] = nodes.into();
    Ok(v)
}

/// Every region as [`region_view`], by code.
pub async fn views<P: Platform>(p: &P, db: &impl Sql) -> Result<Vec<serde_json::Value>, Problem> {
    let mut listed = Vec::new();
    for r in list(db).await? {
        listed.push(region_view(p, db, &r).await?);
    }
    Ok(listed)
}

/// Every active region with each of its nodes' store probed now (and nothing else: a health
/// check reads no usage).
pub async fn probed<P: Platform>(p: &P, db: &impl Sql) -> Result<Vec<(Region, Vec<(Node, bool)>)>, Problem> {
    let mut listed = Vec::new();
    for r in list(db).await?.into_iter().filter(|r| r.status == ACTIVE) {
        let mut nodes = Vec::new();
        for n in self::nodes(db, Some(&r.id)).await? {
            let reachable = probe(p, &n.kind, &n.store).await;
            nodes.push((n, reachable));
        }
        listed.push((r, nodes));
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_codes_are_short_lowercase_and_never_an_id() {
        for good in ["us-west-1", "eu-central-1", "local", "ap"] {
            assert_eq!(check_code(good), Ok(()), "{good}");
        }
        for bad in ["", "a", "US-west", "-eu", "eu-", "eu--1", "1eu", "eu west", "eu_west", "é-1", "x".repeat(33).as_str()] {
            assert!(check_code(bad).is_err(), "{bad}");
        }
        assert!(check_code("0b1c2d3e-0000-4000-8000-000000000000").is_err(), "36 characters: ids and codes never collide");
    }

    #[test]
    fn bindings_are_labels_not_paths() {
        assert_eq!(check_binding("blobs_eu"), Ok(()));
        assert_eq!(check_binding("BLOBS_EU"), Ok(()));
        for bad in ["", "a/b", "blobs-eu", "../x", &"b".repeat(65)] {
            assert!(check_binding(bad).is_err(), "{bad}");
        }
    }
}
