//! Stage 2 (destination side): list every object under the destination prefix with
//! ListObjectsV2 and return them sorted by key, relative to the prefix.
//!
//! One listing replaces a HEAD per object: sizes, ETags and LastModified all come from it.
//! Directory-marker objects (keys ending in `/`) are not files and are left out, so they are
//! never compared, counted as extra, or deleted.
//!
//! A listing is a chain of pages (1,000 keys each) that S3 only hands out one after another,
//! so a big bucket lists at one round trip per 1,000 keys. To go faster without spending
//! requests on small buckets:
//! - the first page is fetched alone; if it is the whole listing, that was one request;
//! - otherwise a *head* lister keeps following the chain from there while *discovery* walks
//!   the "directories" (delimited listings, one page each, level by level in parallel) until
//!   it has enough of them, e.g. a registry's `blobs/sha256/00…ff` and its repositories;
//! - the key space after the head's position is then cut at those directories into ranges,
//!   each listed by its own chain (`start-after` the range's start, stopping past its end),
//!   in parallel; the head stops at the first cut.
//!
//! Ranges are half-open intervals of keys, `(after, until]`, so any sorted set of cut points
//! tiles the key space exactly: no key is listed twice or missed, whatever the cut points are.
//! A listing that ends before discovery does costs no extra pages.

use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use crate::filter::Filter;
use crate::plan::DstEntry;
use crate::s3::{Listed, S3Error, Store};

/// Deepest directory level discovery descends to below the destination prefix.
const MAX_DEPTH: usize = 10;

/// List the destination. Objects the filter excludes are left out (so never deleted).
/// `parallel` is the most listing requests in flight.
pub async fn list(
    store: &Arc<Store>,
    filter: &Filter,
    parallel: usize,
) -> Result<Vec<DstEntry>, S3Error> {
    let prefix = store.path.prefix.clone();
    let first = store.list_page(&prefix, None, None, false).await?;
    let mut listed = first.objects;
    if let Some(token) = first.next
        && let Some(last) = listed.last().map(|o| o.key.clone())
    {
        listed.extend(list_rest(store, &prefix, last, token, parallel.max(1)).await?);
    }
    let mut out: Vec<DstEntry> = listed
        .into_iter()
        .filter_map(|o| {
            let rel = o.key.strip_prefix(&prefix)?;
            if rel.is_empty() || rel.ends_with('/') || !filter.allows(rel) {
                return None;
            }
            Some(DstEntry {
                rel: rel.to_string(),
                size: o.size,
                etag: o.etag,
                last_modified: o.last_modified,
            })
        })
        .collect();
    out.sort_unstable_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok(out)
}

/// Where the head lister is, shared with the code that cuts ranges off its end.
#[derive(Debug)]
struct Head {
    /// Last key the head has kept.
    pos: String,
    /// The head stops after this key, once ranges take over the rest.
    until: Option<String>,
    /// The head reached the end of its part of the listing.
    done: bool,
}

/// Everything after `last` (the first page's last key), given the first page's token.
async fn list_rest(
    store: &Arc<Store>,
    prefix: &str,
    last: String,
    token: String,
    parallel: usize,
) -> Result<Vec<Listed>, S3Error> {
    let head = Arc::new(Mutex::new(Head {
        pos: last.clone(),
        until: None,
        done: false,
    }));
    let mut head_task = {
        let (store, head, prefix) = (store.clone(), head.clone(), prefix.to_string());
        tokio::spawn(async move { follow_head(&store, &prefix, token, &head).await })
    };

    // Discovery runs while the head lists; if the head finishes first, its result is all.
    let cuts = tokio::select! {
        biased;
        r = &mut head_task => return r.expect("head lister"),
        cuts = discover(store, prefix, &last, parallel) => cuts?,
    };
    let ranges = {
        let mut h = head.lock().expect("head lock");
        if h.done {
            Vec::new()
        } else {
            let cuts = spread(cuts.into_iter().filter(|c| *c > h.pos).collect(), parallel);
            h.until = cuts.first().cloned();
            let mut ranges: Vec<(String, Option<String>)> = Vec::new();
            for (i, c) in cuts.iter().enumerate() {
                ranges.push((c.clone(), cuts.get(i + 1).cloned()));
            }
            ranges
        }
    };
    if !ranges.is_empty() {
        tracing::debug!("listing {} ranges in parallel", ranges.len() + 1);
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(
        parallel.saturating_sub(1).max(1),
    ));
    let mut set = JoinSet::new();
    for (after, until) in ranges {
        let (store, prefix, sem) = (store.clone(), prefix.to_string(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            list_range(&store, &prefix, &after, until.as_deref()).await
        });
    }
    let mut out = head_task.await.expect("head lister")?;
    while let Some(r) = set.join_next().await {
        out.extend(r.expect("range lister")?);
    }
    Ok(out)
}

/// Follow one chain of pages, from the start (`after`) or a continuation `token`. `cut` sees
/// each page's objects and whether more pages follow, and returns what to keep and whether to
/// stop.
async fn follow(
    store: &Store,
    prefix: &str,
    after: Option<&str>,
    mut token: Option<String>,
    mut cut: impl FnMut(Vec<Listed>, bool) -> (Vec<Listed>, bool),
) -> Result<Vec<Listed>, S3Error> {
    let mut out = Vec::new();
    loop {
        let start = if token.is_none() { after } else { None };
        let page = store.list_page(prefix, start, token, false).await?;
        let (kept, stop) = cut(page.objects, page.next.is_some());
        out.extend(kept);
        if stop || page.next.is_none() {
            return Ok(out);
        }
        token = page.next;
    }
}

/// The objects up to `until` (all without one), and whether some were past it.
fn keep_until(objects: Vec<Listed>, until: Option<&str>) -> (Vec<Listed>, bool) {
    let n = objects.len();
    let kept: Vec<Listed> = objects
        .into_iter()
        .take_while(|o| until.is_none_or(|u| o.key.as_str() <= u))
        .collect();
    let past = kept.len() < n;
    (kept, past)
}

/// Follow the first page's chain until its end or, once ranges have been cut off, past the
/// first cut.
async fn follow_head(
    store: &Store,
    prefix: &str,
    token: String,
    head: &Mutex<Head>,
) -> Result<Vec<Listed>, S3Error> {
    follow(store, prefix, None, Some(token), |objects, more| {
        let mut h = head.lock().expect("head lock");
        let (kept, past) = keep_until(objects, h.until.as_deref());
        if let Some(o) = kept.last() {
            h.pos = o.key.clone();
        }
        h.done = past || !more;
        (kept, past)
    })
    .await
}

/// Keys in `(after, until]`, or after `after` to the end.
async fn list_range(
    store: &Store,
    prefix: &str,
    after: &str,
    until: Option<&str>,
) -> Result<Vec<Listed>, S3Error> {
    follow(store, prefix, Some(after), None, |objects, _| {
        keep_until(objects, until)
    })
    .await
}

/// Find "directories" after `last` to cut the key space at: expand level by level (one
/// delimited page per directory, `parallel` at once) until a level has at least `4 ×
/// parallel` of them, the tree ends, or `MAX_DEPTH` is reached. Returns them sorted.
async fn discover(
    store: &Arc<Store>,
    prefix: &str,
    last: &str,
    parallel: usize,
) -> Result<Vec<String>, S3Error> {
    let want = parallel * 4;
    let mut level = vec![prefix.to_string()];
    for depth in 0..MAX_DEPTH {
        let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut set = JoinSet::new();
        for dir in level.clone() {
            let (store, sem, last) = (store.clone(), sem.clone(), last.to_string());
            set.spawn(async move {
                let _p = sem.acquire_owned().await;
                let after = (last.as_str() > dir.as_str()).then_some(last.as_str());
                store
                    .list_page(&dir, after, None, true)
                    .await
                    .map(|p| p.prefixes)
            });
        }
        let mut next = Vec::new();
        while let Some(r) = set.join_next().await {
            next.extend(r.expect("discovery")?);
        }
        next.sort_unstable();
        next.dedup();
        if next.is_empty() {
            // The tree ends here: this level's directories are the cuts (none at the top).
            return Ok(if depth == 0 { Vec::new() } else { level });
        }
        if next.len() >= want || depth + 1 == MAX_DEPTH {
            return Ok(next);
        }
        level = next;
    }
    Ok(level)
}

/// At most `n` cuts, evenly spread over the sorted candidates.
fn spread(cuts: Vec<String>, n: usize) -> Vec<String> {
    if cuts.len() <= n {
        return cuts;
    }
    (0..n).map(|i| cuts[i * cuts.len() / n].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_order_and_bounds() {
        let cuts: Vec<String> = (0..256).map(|i| format!("blobs/sha256/{i:02x}/")).collect();
        let s = spread(cuts.clone(), 16);
        assert_eq!(s.len(), 16);
        assert_eq!(s[0], "blobs/sha256/00/");
        assert_eq!(s[1], "blobs/sha256/10/");
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(spread(cuts[..3].to_vec(), 16).len(), 3);
    }
}
