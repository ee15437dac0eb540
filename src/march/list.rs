//! Stage 2 (destination side): list every object under the destination prefix with
//! ListObjectsV2 and hand them out in key order, relative to the prefix, page by page as they
//! arrive: each chain lists at most a couple of pages ahead of the consumer, so memory does not
//! grow with the bucket.
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
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::filter::Filter;
use crate::s3::{Listed, S3Error, Store};

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Key relative to the listed prefix.
    pub rel: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: SystemTime,
}

/// Deepest directory level discovery descends to below the destination prefix.
const MAX_DEPTH: usize = 10;

/// Pages a chain may list ahead of the consumer.
const PAGES_AHEAD: usize = 2;

type Pages = mpsc::Receiver<Vec<Listed>>;
type Chain = (Pages, JoinHandle<Result<(), S3Error>>);

/// A listing in progress: pages come out in key order, however many chains list them.
pub struct Listing {
    prefix: String,
    filter: Filter,
    /// The first page, then the head chain, then the ranges in key order.
    chains: std::collections::VecDeque<Chain>,
    /// Ranges cut once discovery ends, handed over in key order.
    ranges: Option<mpsc::Receiver<Chain>>,
    /// Discovery, while it runs.
    cutting: Option<JoinHandle<Result<(), S3Error>>>,
}

impl Listing {
    /// A listing of nothing (the bucket was just created).
    pub fn empty() -> Listing {
        Listing {
            prefix: String::new(),
            filter: Filter::default(),
            chains: Default::default(),
            ranges: None,
            cutting: None,
        }
    }

    /// The next objects in key order, relative to the prefix; `None` at the end. Directory
    /// markers and objects the filter excludes are left out (so never deleted). Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Vec<ListedObject>, S3Error>> {
        loop {
            if let Some((pages, task)) = self.chains.front_mut() {
                if let Some(page) = pages.recv().await {
                    return Some(Ok(self.keep(page)));
                }
                // The chain stays in place until its lister's result is in: a caller that
                // gives up waiting here (a `select!`) must not lose the chain's error, or an
                // incomplete listing would look complete.
                let r = task.await.expect("lister");
                self.chains.pop_front();
                match r {
                    Ok(()) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }
            let ranges = self.ranges.as_mut()?;
            match ranges.recv().await {
                Some(chain) => self.chains.push_back(chain),
                None => {
                    self.ranges = None;
                    if let Some(task) = self.cutting.as_mut() {
                        let r = task.await.expect("discovery");
                        self.cutting = None;
                        if let Err(e) = r {
                            return Some(Err(e));
                        }
                    }
                }
            }
        }
    }

    fn keep(&self, page: Vec<Listed>) -> Vec<ListedObject> {
        page.into_iter()
            .filter_map(|o| {
                let rel = o.key.strip_prefix(&self.prefix)?;
                // Size and age limits see the object's size and LastModified.
                if rel.is_empty()
                    || rel.ends_with('/')
                    || !self.filter.allows_file(rel, o.size, o.last_modified)
                {
                    return None;
                }
                Some(ListedObject {
                    rel: rel.to_string(),
                    size: o.size,
                    etag: o.etag,
                    last_modified: o.last_modified,
                })
            })
            .collect()
    }
}

#[cfg(test)]
impl Listing {
    /// A listing that hands out these pages (keys relative to an empty prefix).
    pub(crate) fn of(pages: Vec<Vec<ListedObject>>) -> Listing {
        let mut listing = Listing::empty();
        for page in pages {
            let (tx, rx) = mpsc::channel(1);
            let page = page
                .into_iter()
                .map(|d| Listed {
                    key: d.rel,
                    size: d.size,
                    etag: d.etag,
                    last_modified: d.last_modified,
                })
                .collect();
            tx.try_send(page).expect("room for one page");
            listing
                .chains
                .push_back((rx, tokio::spawn(async { Ok(()) })));
        }
        listing
    }
}

/// Start listing the destination: the first page is fetched before this returns (so a missing
/// bucket is known at once); the rest is listed in the background, `parallel` requests at
/// most, and comes out of [`Listing::next`] in key order.
pub async fn start(
    store: &Arc<Store>,
    filter: &Filter,
    parallel: usize,
) -> Result<Listing, S3Error> {
    let prefix = store.path.prefix.clone();
    let first = store.list_page(&prefix, None, None, false).await?;
    let mut listing = Listing {
        prefix: prefix.clone(),
        filter: filter.clone(),
        chains: Default::default(),
        ranges: None,
        cutting: None,
    };
    let last = first.objects.last().map(|o| o.key.clone());
    let (tx, rx) = mpsc::channel(1);
    tx.send(first.objects).await.expect("own channel");
    drop(tx);
    listing
        .chains
        .push_back((rx, tokio::spawn(async { Ok(()) })));
    if let (Some(token), Some(last)) = (first.next, last) {
        let parallel = parallel.max(1);
        let head = Arc::new(Mutex::new(Head {
            pos: last.clone(),
            until: None,
            done: false,
        }));
        let (tx, rx) = mpsc::channel(PAGES_AHEAD);
        let head_ended = Arc::new(tokio::sync::Notify::new());
        let head_task = {
            let (store, head, prefix) = (store.clone(), head.clone(), prefix.clone());
            let ended = head_ended.clone();
            tokio::spawn(async move {
                let r = follow_head(&store, &prefix, token, &head, tx).await;
                ended.notify_one();
                r
            })
        };
        listing.chains.push_back((rx, head_task));
        let (ranges_tx, ranges_rx) = mpsc::channel(parallel);
        let store = store.clone();
        listing.ranges = Some(ranges_rx);
        listing.cutting = Some(tokio::spawn(async move {
            cut_ranges(
                &store,
                &prefix,
                &last,
                parallel,
                &head,
                &head_ended,
                ranges_tx,
            )
            .await
        }));
    }
    Ok(listing)
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

/// While the head lists, discover directories; then cut the rest of the key space into
/// ranges and start a chain for each, in key order, handing each to the consumer as it
/// starts. A chain takes a request slot before it starts, in order, so the chain the consumer
/// is reading always has one.
async fn cut_ranges(
    store: &Arc<Store>,
    prefix: &str,
    last: &str,
    parallel: usize,
    head: &Mutex<Head>,
    head_ended: &tokio::sync::Notify,
    out: mpsc::Sender<Chain>,
) -> Result<(), S3Error> {
    // If the head reaches the end first, its pages are the whole listing: stop discovering.
    // (Only discovery is abandoned: once ranges are cut, every one of them is listed.)
    let cuts = tokio::select! {
        biased;
        _ = head_ended.notified() => return Ok(()),
        cuts = discover(store, prefix, last, parallel) => cuts?,
    };
    let ranges = {
        let mut h = head.lock().expect("head lock");
        if h.done {
            return Ok(());
        }
        let cuts = spread(cuts.into_iter().filter(|c| *c > h.pos).collect(), parallel);
        h.until = cuts.first().cloned();
        let mut ranges: Vec<(String, Option<String>)> = Vec::new();
        for (i, c) in cuts.iter().enumerate() {
            ranges.push((c.clone(), cuts.get(i + 1).cloned()));
        }
        ranges
    };
    if !ranges.is_empty() {
        tracing::debug!("listing {} ranges in parallel", ranges.len() + 1);
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(
        parallel.saturating_sub(1).max(1),
    ));
    for (after, until) in ranges {
        let permit = sem.clone().acquire_owned().await.expect("open semaphore");
        let (tx, rx) = mpsc::channel(PAGES_AHEAD);
        let store = store.clone();
        // Every key between two keys starts with their common prefix, so listing under it
        // is the same range; servers that keep keys as directories then scan less.
        let prefix = match &until {
            Some(u) => common_prefix(&after, u).to_string(),
            None => prefix.to_string(),
        };
        let task = tokio::spawn(async move {
            let _p = permit;
            follow(
                &store,
                &prefix,
                Some(&after),
                None,
                None,
                tx,
                |objects, _| keep_until(objects, until.as_deref()),
            )
            .await
        });
        if out.send((rx, task)).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Empty pages in a row, each promising more, after which a listing is taken to be looping.
const MAX_EMPTY_PAGES: u32 = 1000;

/// Follow one chain of pages, from the start (`after`) or a continuation `token`, sending
/// what `cut` keeps of each page; `cut` also sees whether more pages follow and says whether
/// to stop. `floor` is the last key already listed before this chain (its first key must come
/// after it).
///
/// The chain must make progress: a continuation token seen before, a page whose keys do not
/// come after the previous page's, or endless empty pages are protocol errors, never a
/// silent end or a loop.
async fn follow(
    store: &Store,
    prefix: &str,
    after: Option<&str>,
    mut token: Option<String>,
    floor: Option<String>,
    out: mpsc::Sender<Vec<Listed>>,
    mut cut: impl FnMut(Vec<Listed>, bool) -> (Vec<Listed>, bool),
) -> Result<(), S3Error> {
    let shown = store.shown(prefix);
    let mut seen: std::collections::HashSet<String> = token.iter().cloned().collect();
    let mut last = floor.or_else(|| after.map(String::from));
    let mut empty = 0u32;
    loop {
        let start = if token.is_none() { after } else { None };
        let page = store.list_page(prefix, start, token, false).await?;
        if let Some(next) = &page.next {
            if !seen.insert(next.clone()) {
                return Err(S3Error::protocol(
                    "list",
                    &shown,
                    "the server repeated a continuation token: the listing would never end",
                ));
            }
            if empty >= MAX_EMPTY_PAGES {
                return Err(S3Error::protocol(
                    "list",
                    &shown,
                    format!("{MAX_EMPTY_PAGES} empty pages in a row, each promising more"),
                ));
            }
        }
        if let (Some(l), Some(first)) = (&last, page.objects.first())
            && first.key <= *l
        {
            return Err(S3Error::protocol(
                "list",
                &shown,
                format!(
                    "the listing does not advance: after {l:?} the next page starts at {:?}",
                    first.key
                ),
            ));
        }
        if let Some(o) = page.objects.last() {
            last = Some(o.key.clone());
            empty = 0;
        } else {
            empty += 1;
        }
        let (kept, stop) = cut(page.objects, page.next.is_some());
        if out.send(kept).await.is_err() {
            return Ok(());
        }
        if stop || page.next.is_none() {
            return Ok(());
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
    out: mpsc::Sender<Vec<Listed>>,
) -> Result<(), S3Error> {
    let floor = head.lock().expect("head lock").pos.clone();
    follow(
        store,
        prefix,
        None,
        Some(token),
        Some(floor),
        out,
        |objects, more| {
            let mut h = head.lock().expect("head lock");
            let (kept, past) = keep_until(objects, h.until.as_deref());
            if let Some(o) = kept.last() {
                h.pos = o.key.clone();
            }
            h.done = past || !more;
            (kept, past)
        },
    )
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

/// The longest common prefix of two keys, on a character boundary.
fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let mut end = 0;
    for ((i, x), y) in a.char_indices().zip(b.chars()) {
        if x != y {
            break;
        }
        end = i + x.len_utf8();
    }
    &a[..end]
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

    /// A caller that stops waiting while a chain's lister is finishing (sync and check wait
    /// on the listing inside `select!`) must still get that lister's error on the next call:
    /// an error lost there made a listing cut short look complete, and a sync then deleted.
    #[tokio::test]
    async fn a_chain_error_survives_a_caller_that_stops_waiting() {
        let mut listing = Listing::empty();
        let (tx, rx) = mpsc::channel::<Vec<Listed>>(1);
        drop(tx);
        let task = tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Err(S3Error::protocol(
                "list",
                "b",
                "the listing does not advance",
            ))
        });
        listing.chains.push_back((rx, task));
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), listing.next()).await;
        assert!(waited.is_err(), "still waiting for the lister");
        match listing.next().await {
            Some(Err(e)) => assert!(e.to_string().contains("does not advance"), "{e}"),
            other => panic!("the error was lost: {other:?}"),
        }
        assert!(listing.next().await.is_none());
    }

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix("p/d00/", "p/d06/"), "p/d0");
        assert_eq!(common_prefix("p/a", "p/a/b"), "p/a");
        assert_eq!(common_prefix("ü1", "ü2"), "ü");
        assert_eq!(common_prefix("é", "è"), "", "never splits a character");
        assert_eq!(common_prefix("", "x"), "");
    }

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
