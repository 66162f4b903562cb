//! File search (`GET /api/files/search`): criteria to SQL over the indexes of migration 0007,
//! with keyset pagination.
//!
//! Every query either walks one partial index of the caller's heads in the sort order
//! (`files_heads_by_{created,updated,name,size}`) from the cursor on and stops after
//! `limit + 1` matches, or starts from the tag, metadata or type index when a criterion is
//! rare there. Which one is decided per query from capped counts ([`Density`]): a criterion
//! matching at most [`RARE`] files is looked up (`IN`: at most that many rows, then sorted);
//! a more common one is checked row by row along the sort index (`EXISTS`: on average fewer
//! than `limit × files / RARE` rows walked). Either way the cost is bounded by the page and
//! the criteria, not by how many files the user has. A name substring starts from the files
//! holding its rarest trigram (`file_name_grams`) when that trigram is rare; a substring made
//! only of common trigrams is filtered along the sort index. Names fold ASCII letters only (as
//! SQL's `LOWER` does everywhere). The plans are checked in `file_api_tests.rs`.
//!
//! The **cursor** is the sort key and id of the last file of the page (opaque: base64url JSON,
//! bound to the sort and the criteria). The next page starts strictly after that pair, so
//! files added or deleted between pages never cause a duplicate or a gap among the others.

use crate::files::{self, ARCHIVED, AVAILABLE, INVALID, UPLOADING};
use base64::Engine;
use vaultx_core::http::ApiRequest;
use vaultx_core::ports::SqlValue;
use vaultx_core::problem::ProblemKind;
use vaultx_core::Problem;

pub const MAX_LIMIT: u64 = 100;
/// A criterion matching at most this many of the user's files is looked up in its own index.
pub const RARE: i64 = 10_000;


/// Which criteria match more than [`RARE`] files (so are checked along the sort index).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Density {
    /// The name query's rarest trigram, when it is rare: the search starts from its files.
    pub name_gram: Option<String>,
    pub common_tags: Vec<String>,
    pub any_tags_common: bool,
    pub common_metadata: Vec<(String, String)>,
    pub type_family_common: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sort {
    CreatedAt,
    UpdatedAt,
    Name,
    Size,
}

impl Sort {
    fn column(self) -> &'static str {
        match self {
            Sort::CreatedAt => "created_at",
            Sort::UpdatedAt => "updated_at",
            Sort::Name => "name",
            Sort::Size => "size",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    pub name: Option<String>,
    pub all_tags: Vec<String>,
    pub any_tags: Vec<String>,
    pub metadata: Vec<(String, String)>,
    /// `image/png`, or `image/*`.
    pub mime_type: Option<String>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    pub updated_from: Option<i64>,
    pub updated_to: Option<i64>,
    pub status: Option<String>,
    pub min_versions: Option<i64>,
    pub max_versions: Option<i64>,
    pub sort: Option<Sort>,
    pub descending: bool,
    pub limit: u64,
    /// The sort key and id of the previous page's last file.
    pub after: Option<(SqlValue, String)>,
}

fn bad(detail: String) -> Problem {
    Problem::new(ProblemKind::InvalidQuery, detail)
}

pub fn encode_cursor(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

pub fn decode_cursor(c: &str) -> Option<serde_json::Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// RFC 3339 (`2026-11-25T10:00:00Z`) or milliseconds since the epoch.
pub fn parse_time(v: &str) -> Option<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    vaultx_core::time::parse_rfc3339(v)
}

fn list(v: Option<String>) -> Vec<String> {
    v.map(|s| s.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()).unwrap_or_default()
}

impl Query {
    /// Reads the criteria from the query string (see the route's documentation).
    pub fn from_request(req: &ApiRequest) -> Result<Query, Problem> {
        let known = [
            "q", "tags", "anyTags", "type", "minSize", "maxSize", "createdFrom", "createdTo", "updatedFrom", "updatedTo", "status", "minVersions",
            "maxVersions", "sort", "order", "limit", "cursor",
        ];
        let mut q = Query { limit: 20, ..Default::default() };
        for (k, v) in req.query_params() {
            if let Some(key) = k.strip_prefix("meta.") {
                crate::labels::check_metadata_key(&k, key).map_err(|e| bad(format!("{k}: {}", e.message)))?;
                q.metadata.push((key.to_owned(), v));
            } else if !known.contains(&k.as_str()) {
                return Err(bad(format!("unknown parameter {k}: use {} or meta.<key>", known.join(", "))));
            }
        }
        let number = |name: &str| -> Result<Option<u64>, Problem> {
            req.query_param(name).map(|v| v.parse::<u64>().map_err(|_| bad(format!("{name}={v}: use a whole number")))).transpose()
        };
        let time = |name: &str| -> Result<Option<i64>, Problem> {
            req.query_param(name).map(|v| parse_time(&v).ok_or_else(|| bad(format!("{name}={v}: use an RFC 3339 time or milliseconds since the epoch")))).transpose()
        };
        q.name = req.query_param("q").filter(|s| !s.is_empty());
        q.all_tags = list(req.query_param("tags"));
        q.any_tags = list(req.query_param("anyTags"));
        for t in q.all_tags.iter().chain(&q.any_tags) {
            crate::labels::check_tag("tags", t).map_err(|e| bad(format!("tag {t:?}: {}", e.message)))?;
        }
        if q.all_tags.len() > crate::labels::MAX_TAGS || q.any_tags.len() > 50 {
            return Err(bad("too many tags in one search".into()));
        }
        if q.metadata.len() > 10 {
            return Err(bad("at most 10 meta.<key> criteria".into()));
        }
        q.mime_type = req.query_param("type");
        if let Some(t) = &q.mime_type {
            let base = t.strip_suffix("/*").unwrap_or(t);
            if base.is_empty() || !base.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-/".contains(c)) {
                return Err(bad(format!("type={t}: use a media type (image/png) or a family (image/*)")));
            }
        }
        q.min_size = number("minSize")?;
        q.max_size = number("maxSize")?;
        q.created_from = time("createdFrom")?;
        q.created_to = time("createdTo")?;
        q.updated_from = time("updatedFrom")?;
        q.updated_to = time("updatedTo")?;
        q.status = req.query_param("status");
        if let Some(s) = &q.status {
            if ![UPLOADING, AVAILABLE, ARCHIVED, INVALID].contains(&s.as_str()) {
                return Err(bad(format!("status={s}: use uploading, available, archived or invalid")));
            }
        }
        q.min_versions = number("minVersions")?.map(|n| n as i64);
        q.max_versions = number("maxVersions")?.map(|n| n as i64);
        q.sort = Some(match req.query_param("sort").as_deref().unwrap_or("createdAt") {
            "createdAt" => Sort::CreatedAt,
            "updatedAt" => Sort::UpdatedAt,
            "name" => Sort::Name,
            "size" => Sort::Size,
            other => return Err(bad(format!("sort={other}: use createdAt, updatedAt, name or size"))),
        });
        q.descending = match req.query_param("order").as_deref().unwrap_or("desc") {
            "asc" => false,
            "desc" => true,
            other => return Err(bad(format!("order={other}: use asc or desc"))),
        };
        if let Some(l) = number("limit")? {
            if !(1..=MAX_LIMIT).contains(&l) {
                return Err(bad(format!("limit must be a whole number from 1 to {MAX_LIMIT}")));
            }
            q.limit = l;
        }
        if let Some(c) = req.query_param("cursor") {
            let foreign = || bad("cursor does not belong to this search: send the same criteria, sort and order as the first page".into());
            let v = decode_cursor(&c).ok_or_else(foreign)?;
            if v[2].as_str() != Some(&q.fingerprint()) {
                return Err(foreign());
            }
            let key = match (&v[0], q.sort) {
                (serde_json::Value::String(s), Some(Sort::Name)) => SqlValue::Text(s.clone()),
                (serde_json::Value::Number(n), Some(Sort::CreatedAt | Sort::UpdatedAt | Sort::Size)) => SqlValue::Integer(n.as_i64().ok_or_else(foreign)?),
                _ => return Err(foreign()),
            };
            q.after = Some((key, v[1].as_str().ok_or_else(foreign)?.to_owned()));
        }
        Ok(q)
    }

    /// What a cursor is bound to: the criteria, the sort and the order.
    fn fingerprint(&self) -> String {
        let canonical = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}",
            self.name, self.all_tags, self.any_tags, self.metadata, self.mime_type, self.min_size, self.max_size, self.created_from, self.created_to,
            self.updated_from, self.updated_to, self.status, self.min_versions, self.max_versions, self.sort, self.descending
        );
        vaultx_core::digest::hex(&vaultx_core::digest::sha256(canonical.as_bytes()))[..16].to_owned()
    }

    /// The cursor after this file.
    pub fn cursor_after(&self, f: &files::FileRecord) -> String {
        let key = match self.sort.unwrap_or(Sort::CreatedAt) {
            Sort::CreatedAt => serde_json::json!(f.created_at_ms),
            Sort::UpdatedAt => serde_json::json!(f.updated_at_ms),
            Sort::Name => serde_json::json!(f.name),
            Sort::Size => serde_json::json!(f.size),
        };
        encode_cursor(&serde_json::json!([key, f.id, self.fingerprint()]))
    }

    /// The SQL of one page (`limit + 1` rows, to know whether another page follows).
    pub fn sql(&self, owner_id: &str, density: &Density) -> (String, Vec<SqlValue>) {
        let sort = self.sort.unwrap_or(Sort::CreatedAt).column();
        let mut sql = format!("SELECT {} FROM files WHERE owner_id = ? AND version_of IS NULL", files::COLUMNS);
        let mut p: Vec<SqlValue> = vec![owner_id.into()];
        if let Some(name) = &self.name {
            if let Some(gram) = &density.name_gram {
                sql.push_str(" AND id IN (SELECT file_id FROM file_name_grams WHERE owner_id = ? AND gram = ?)");
                p.extend([owner_id.into(), gram.clone().into()]);
            }
            let escaped = name.to_ascii_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            sql.push_str(" AND LOWER(name) LIKE ? ESCAPE '\\'");
            p.push(format!("%{escaped}%").into());
        }
        // A rare criterion is a lookup (IN); a common one a check per row walked (EXISTS).
        let lookup = |common: bool| if common { "EXISTS (SELECT 1 FROM" } else { "id IN (SELECT file_id FROM" };
        let correlate = |common: bool| if common { " AND file_id = files.id)" } else { ")" };
        for tag in &self.all_tags {
            let common = density.common_tags.contains(tag);
            sql.push_str(&format!(" AND {} file_tags WHERE owner_id = ? AND tag = ?{}", lookup(common), correlate(common)));
            p.extend([owner_id.into(), tag.clone().into()]);
        }
        if !self.any_tags.is_empty() {
            let common = density.any_tags_common;
            let marks = vec!["?"; self.any_tags.len()].join(", ");
            sql.push_str(&format!(" AND {} file_tags WHERE owner_id = ? AND tag IN ({marks}){}", lookup(common), correlate(common)));
            p.push(owner_id.into());
            p.extend(self.any_tags.iter().map(|t| t.clone().into()));
        }
        for (k, v) in &self.metadata {
            let common = density.common_metadata.contains(&(k.clone(), v.clone()));
            sql.push_str(&format!(" AND {} file_metadata WHERE owner_id = ? AND meta_key = ? AND value = ?{}", lookup(common), correlate(common)));
            p.extend([owner_id.into(), k.clone().into(), v.clone().into()]);
        }
        match self.mime_type.as_deref().map(|t| (t, t.strip_suffix("/*"))) {
            // A rare family is a range of the type index: `image/` ≤ type < `image0` ('0'
            // follows '/'); a common one is checked along the sort index (an expression no
            // index serves, on purpose).
            Some((_, Some(family))) if density.type_family_common => {
                // The length is ours (a validated family's), written into the SQL: PostgreSQL
                // types substr's length as INTEGER, which a BIGINT parameter does not bind to.
                sql.push_str(&format!(" AND substr(mime_type, 1, {}) = ?", family.len() + 1));
                p.push(format!("{family}/").into());
            }
            Some((_, Some(family))) => {
                sql.push_str(" AND mime_type >= ? AND mime_type < ?");
                p.extend([format!("{family}/").into(), format!("{family}0").into()]);
            }
            Some((exact, None)) => {
                sql.push_str(" AND mime_type = ?");
                p.push(exact.into());
            }
            None => {}
        }
        let mut range = |column: &str, op: &str, v: Option<i64>| {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {column} {op} ?"));
                p.push(SqlValue::Integer(v));
            }
        };
        range("size", ">=", self.min_size.map(|n| n as i64));
        range("size", "<=", self.max_size.map(|n| n as i64));
        range("created_at", ">=", self.created_from);
        range("created_at", "<", self.created_to);
        range("updated_at", ">=", self.updated_from);
        range("updated_at", "<", self.updated_to);
        range("version_count", ">=", self.min_versions);
        range("version_count", "<=", self.max_versions);
        if let Some(s) = &self.status {
            sql.push_str(" AND status = ?");
            p.push(s.clone().into());
        }
        let (op, dir) = if self.descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some((key, id)) = &self.after {
            sql.push_str(&format!(" AND ({sort}, id) {op} (?, ?)"));
            p.extend([key.clone(), id.clone().into()]);
        }
        sql.push_str(&format!(" ORDER BY {sort} {dir}, id {dir} LIMIT ?"));
        p.push(SqlValue::Integer(self.limit as i64 + 1));
        (sql, p)
    }
}

/// How many of the user's files a lookup matches, counted up to `RARE + 1` (an index range).
async fn capped_count(db: &impl vaultx_core::ports::Sql, sql: &str, params: Vec<SqlValue>) -> Result<i64, Problem> {
    let rows = db
        .query(&format!("SELECT count(*) FROM ({sql} LIMIT {}) capped", RARE + 1), params)
        .await
        .map_err(crate::store::store_failure)?;
    rows.first().map(|r| r.int(0)).transpose().map_err(crate::store::store_failure).map(|n| n.unwrap_or(0))
}

/// Which of the query's criteria are common for this user (one capped index count each).
pub async fn density(db: &impl vaultx_core::ports::Sql, owner_id: &str, q: &Query) -> Result<Density, Problem> {
    let mut d = Density::default();
    if let Some(name) = &q.name {
        let mut rarest: Option<(i64, String)> = None;
        for gram in files::grams(name) {
            let n = capped_count(db, "SELECT 1 FROM file_name_grams WHERE owner_id = ? AND gram = ?", vec![owner_id.into(), gram.clone().into()]).await?;
            if rarest.as_ref().is_none_or(|(m, _)| n < *m) {
                rarest = Some((n, gram));
            }
        }
        d.name_gram = rarest.filter(|(n, _)| *n <= RARE).map(|(_, g)| g);
    }
    for tag in &q.all_tags {
        let n = capped_count(db, "SELECT 1 FROM file_tags WHERE owner_id = ? AND tag = ?", vec![owner_id.into(), tag.clone().into()]).await?;
        if n > RARE {
            d.common_tags.push(tag.clone());
        }
    }
    if !q.any_tags.is_empty() {
        let marks = vec!["?"; q.any_tags.len()].join(", ");
        let mut params: Vec<SqlValue> = vec![owner_id.into()];
        params.extend(q.any_tags.iter().map(|t| t.clone().into()));
        d.any_tags_common = capped_count(db, &format!("SELECT 1 FROM file_tags WHERE owner_id = ? AND tag IN ({marks})"), params).await? > RARE;
    }
    for (k, v) in &q.metadata {
        let params = vec![owner_id.into(), k.clone().into(), v.clone().into()];
        if capped_count(db, "SELECT 1 FROM file_metadata WHERE owner_id = ? AND meta_key = ? AND value = ?", params).await? > RARE {
            d.common_metadata.push((k.clone(), v.clone()));
        }
    }
    if let Some(family) = q.mime_type.as_deref().and_then(|t| t.strip_suffix("/*")) {
        let params = vec![owner_id.into(), format!("{family}/").into(), format!("{family}0").into()];
        d.type_family_common =
            capped_count(db, "SELECT 1 FROM files WHERE owner_id = ? AND version_of IS NULL AND mime_type >= ? AND mime_type < ?", params).await? > RARE;
    }
    Ok(d)
}
