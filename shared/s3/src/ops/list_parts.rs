//! `ListParts` (`GET /BUCKET/KEY?uploadId=ID`): the parts stored so far, by number, after
//! `part-number-marker`, at most `max-parts` (1,000).

use s3s::dto::{ListPartsInput, ListPartsOutput, Part};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{etag, timestamp, upload_of};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let (db, bucket, upload) = upload_of(cx, &input.bucket, &input.key, &input.upload_id).await?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = input.part_number_marker.unwrap_or(0);
    let stored: Vec<_> = vaultx_api::multipart::parts(&db, &upload.id).await.map_err(from_problem)?.into_iter().filter(|p| p.number as i32 > marker).collect();
    let truncated = stored.len() > max;
    let page: Vec<_> = stored.into_iter().take(max).collect();
    let next = page.last().map(|p| p.number as i32);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(bucket.name),
        key: Some(upload.key),
        upload_id: Some(upload.id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next.filter(|_| truncated),
        is_truncated: Some(truncated),
        parts: Some(
            page.iter()
                .map(|p| Part { part_number: Some(p.number as i32), size: Some(p.size as i64), e_tag: Some(etag(&p.md5)), last_modified: Some(timestamp(p.updated_at)), ..Default::default() })
                .collect(),
        ),
        ..Default::default()
    }))
}
