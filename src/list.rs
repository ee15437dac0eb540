//! Stage 2 (destination side): list every object under the destination prefix with
//! ListObjectsV2, page by page, and return them sorted by key, relative to the prefix.
//!
//! One listing replaces a HEAD per object: sizes, ETags and LastModified all come from it.
//! Directory-marker objects (keys ending in `/`) are not files and are left out, so they are
//! never compared, counted as extra, or deleted.

use crate::filter::Filter;
use crate::plan::DstEntry;
use crate::s3::{S3Error, Store};

/// List the destination. Objects the filter excludes are left out (so never deleted).
pub async fn list(store: &Store, filter: &Filter) -> Result<Vec<DstEntry>, S3Error> {
    let prefix = store.path.prefix.clone();
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = store.list_page(&prefix, token).await?;
        for o in items {
            let Some(rel) = o.key.strip_prefix(&prefix) else {
                continue;
            };
            if rel.is_empty() || rel.ends_with('/') || !filter.allows(rel) {
                continue;
            }
            out.push(DstEntry {
                rel: rel.to_string(),
                size: o.size,
                etag: o.etag,
                last_modified: o.last_modified,
            });
        }
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    out.sort_unstable_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok(out)
}
