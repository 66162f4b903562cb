//! The verification job (kind `verify`): checks a file's declared whole-content SHA-256
//! (`checksum`) off the upload path. A file that declared both a SHA-256 and a CRC-64/NVME
//! (`checksumCrc64nvme`) becomes `available` as soon as the CRC — combined from the per-chunk
//! CRCs computed as the chunks arrived, no byte read again — matches; this job then reads the
//! content once and either records `checksumVerified: true` or, if the content is not what the
//! SHA-256 says (the declared checksums contradict each other), makes the file `invalid`: its
//! manifest goes, so no signed URL serves it, and only a delete remains.

use crate::store::store_failure;
use crate::files::{self, AVAILABLE, INVALID};
use crate::outbox::Lease;
use crate::layout;
use vaultx_core::Problem;
use vaultx_core::digest::hex;
use vaultx_core::guard;
use vaultx_core::http::BlobSlice;
use vaultx_core::ports::{Kv, Platform, Sql, SqlValue, Statement, StoreError};

pub const KIND: &str = crate::outbox::VERIFY;

pub async fn run<P: Platform>(p: &P, lease: &Lease) -> Result<(), Problem> {
    let job = &lease.job;
    let db = p.metadata().await.map_err(store_failure)?;
    let kv = p.kv().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    'attempt: for _ in 0..crate::store::ATTEMPTS {
        let Some(f) = files::find(&db, &job.subject).await? else { return Ok(()) };
        if f.status == INVALID {
            // Finish what an attempt that died after the transition started.
            return unpublish(&kv, &f).await;
        }
        let Some(declared) = f.checksum.clone() else { return Ok(()) };
        if f.status != AVAILABLE || f.checksum_verified {
            return Ok(());
        }
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        for (key, len) in layout::current(&db, &f.id).await? {
            lease.keep(&db, p.now_ms()).await?;
            let Ok(bytes) = (BlobSlice::new(key.clone(), 0, len)).read(&store).await else {
                if let Some(lost) = layout::missing_block(&db, &f, &key).await? {
                    return Err(lost);
                }
                continue 'attempt;
            };
            sha2::Digest::update(&mut hasher, &bytes);
        }
        let actual = format!("sha256:{}", hex(&sha2::Digest::finalize(hasher)));
        let now = SqlValue::Integer(p.now_ms());
        let matches = actual == declared;
        let set = if matches {
            Statement { sql: "UPDATE files SET checksum_verified = 1, updated_at = ? WHERE id = ?", params: vec![now, f.id.clone().into()] }
        } else {
            Statement {
                sql: "UPDATE files SET status = 'invalid', row_version = row_version + 1, updated_at = ? WHERE id = ?",
                params: vec![now, f.id.clone().into()],
            }
        };
        // On the row version read: a new version or a restore swaps the content under us.
        match db.batch(vec![guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'available' AND row_version = ?)", &f.id, f.row_version), set]).await {
            Ok(()) if matches => return Ok(()),
            Ok(()) => {
                eprintln!("vaultx: file {} is invalid: its content is {actual}, its declared checksum {declared}", f.id);
                return unpublish(&kv, &f).await;
            }
            // Deleted or changed meanwhile: read it again.
            Err(StoreError::Conflict | StoreError::Contended) => continue,
            Err(e) => return Err(store_failure(e)),
        }
    }
    Err(crate::store::busy())
}

async fn unpublish(kv: &impl Kv, f: &files::FileRecord) -> Result<(), Problem> {
    if let Some(manifest_id) = &f.manifest_id {
        kv.delete(&f.manifest_key(manifest_id)).await.map_err(store_failure)?;
    }
    Ok(())
}
