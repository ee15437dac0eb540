//! Stage 2 (destination side): list every object under the destination prefix with
//! ListObjectsV2 and hand them out in key order, relative to the prefix, as they arrive, with
//! a bounded number of pages held ahead of the consumer, so memory does not grow with the
//! bucket.
//!
//! One listing replaces a HEAD per object: sizes, ETags and LastModified all come from it.
//! Directory-marker objects (keys ending in `/`) are not files and are left out, so they are
//! never compared, counted as extra, or deleted.
//!
//! A listing is a chain of pages (1,000 keys each) that S3 only hands out one after another,
//! so one chain lists at one round trip per 1,000 keys. To go faster without spending
//! requests on small buckets or memory on big ones, the key space is listed in *pieces*:
//! - the first page is fetched alone; if it is the whole listing, that was one request;
//! - otherwise the rest, `(last key, end]`, is the first piece. A piece is listed for at most
//!   [`PIECE_PAGES`] pages; if it has not ended by then, what is left of it is cut into
//!   smaller pieces at keys made from what the piece has seen (its keys' characters, at the
//!   positions where its keys differ, then at each coarser position), nearest first;
//! - up to `parallel` pieces are listed at once, in key order, and a piece's pages are held
//!   until the consumer reaches them: at most `parallel × PIECE_PAGES` pages ahead.
//!
//! The cuts need no extra requests and no knowledge of the layout: a registry's content
//! digests, its repositories and any other names are cut by the characters they use. Pieces
//! are half-open intervals of keys, `(after, until]`, so any sorted set of cut points tiles
//! the key space exactly: no key is listed twice or missed, whatever the cut points are; a
//! poor cut costs a request, never a key.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
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

/// Pages with keys a piece lists before what is left of it is cut into smaller pieces.
const PIECE_PAGES: usize = 2;

/// Most cut points made at once from one piece's keys.
const MAX_CUTS: usize = 64;

/// Keys a full page holds (S3's default and most servers' maximum).
const PAGE_KEYS: f64 = 1000.0;

/// A listing in progress: pages come out in key order, however many pieces list them.
pub struct Listing {
    prefix: String,
    filter: Filter,
    /// The first page, until handed out.
    first: Option<Vec<Listed>>,
    /// The rest, in key order, from the task that lists the pieces.
    pages: Option<mpsc::Receiver<Vec<Listed>>>,
    /// That task, until its result is in.
    task: Option<JoinHandle<Result<(), S3Error>>>,
}

impl Listing {
    /// A listing of nothing (the bucket was just created).
    pub fn empty() -> Listing {
        Listing {
            prefix: String::new(),
            filter: Filter::default(),
            first: None,
            pages: None,
            task: None,
        }
    }

    /// The next objects in key order, relative to the prefix; `None` at the end. Directory
    /// markers and objects the filter excludes are left out (so never deleted). Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Vec<ListedObject>, S3Error>> {
        if let Some(page) = self.first.take() {
            return Some(Ok(self.keep(page)));
        }
        if let Some(pages) = self.pages.as_mut()
            && let Some(page) = pages.recv().await
        {
            return Some(Ok(self.keep(page)));
        }
        // The task stays in place until its result is in: a caller that gives up waiting
        // here (a `select!`) must not lose the listing's error, or an incomplete listing
        // would look complete.
        let task = self.task.as_mut()?;
        let r = task.await.expect("lister");
        self.task = None;
        self.pages = None;
        r.err().map(Err)
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
        let (tx, rx) = mpsc::channel(pages.len().max(1));
        for page in pages {
            let page = page
                .into_iter()
                .map(|d| Listed {
                    key: d.rel,
                    size: d.size,
                    etag: d.etag,
                    last_modified: d.last_modified,
                })
                .collect();
            tx.try_send(page).expect("room for every page");
        }
        listing.pages = Some(rx);
        listing.task = Some(tokio::spawn(async { Ok(()) }));
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
        first: None,
        pages: None,
        task: None,
    };
    if let (Some(token), Some(last)) = (first.next, first.objects.last()) {
        // The first piece goes on from the first page's continuation token: a server whose
        // chain misbehaves is caught on the chain itself.
        let piece = Piece {
            after: last.key.clone(),
            until: None,
            token: Some(token),
            prefix: prefix.clone(),
            level: None,
        };
        let (tx, rx) = mpsc::channel(1);
        let store = store.clone();
        let parallel = parallel.max(1);
        listing.pages = Some(rx);
        listing.task = Some(tokio::spawn(async move {
            list_pieces(&store, &prefix, piece, parallel, tx).await
        }));
    }
    listing.first = Some(first.objects);
    Ok(listing)
}

/// Part of the key space: the keys `k` with `after < k <= until` (no end without `until`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    after: String,
    until: Option<String>,
    /// Where the listing goes on from instead of `after`: a continuation token of a chain
    /// listed under `prefix`.
    token: Option<String>,
    /// What the piece is listed under: the listed prefix, or a longer one all its keys share.
    prefix: String,
    /// The character position of the cut that ends the piece, if it was made at one.
    level: Option<usize>,
}

impl Piece {
    /// The piece `(after, until]` with nothing listed yet, cut at `level`.
    fn cut(root: &str, after: String, until: Option<String>, level: Option<usize>) -> Piece {
        // Every key between two keys starts with their common prefix, so listing under it
        // is the same piece; servers that keep keys as directories then scan less.
        let prefix = match &until {
            Some(u) if common_prefix(&after, u).len() > root.len() => common_prefix(&after, u),
            _ => root,
        }
        .to_string();
        Piece {
            after,
            until,
            token: None,
            prefix,
            level,
        }
    }
}

/// What listing a piece gave: its pages and, if it did not reach its end, the pieces that
/// tile the rest of it, in key order.
struct PieceListed {
    pages: Vec<Vec<Listed>>,
    rest: Vec<Piece>,
}

/// A piece in the queue: not started, being listed, or listed and waiting for the consumer.
enum Slot {
    Waiting(Piece),
    Listing(u64),
    Ready(VecDeque<Vec<Listed>>),
}

/// List the key space from `first` on in pieces, `parallel` at once and in key order, and
/// send their pages to `out` in key order. Ends at the end of the listing, when the consumer
/// goes away, or at the first error (the pieces still being listed are dropped).
async fn list_pieces(
    store: &Arc<Store>,
    prefix: &str,
    first: Piece,
    parallel: usize,
    out: mpsc::Sender<Vec<Listed>>,
) -> Result<(), S3Error> {
    let mut queue: VecDeque<Slot> = VecDeque::from([Slot::Waiting(first)]);
    let mut running: JoinSet<(u64, Option<usize>, Result<PieceListed, S3Error>)> = JoinSet::new();
    let mut next_id = 0u64;
    let split = parallel > 1;
    // Per character position, how many pieces cut there came back empty and not: positions
    // where keys never differ (a digest's first characters repeat its directory's) stop
    // being cut at.
    let mut tried: std::collections::HashMap<usize, (u32, u32)> = Default::default();
    let mut fixed: Arc<BTreeSet<usize>> = Arc::default();
    let mut said = false;
    loop {
        // Start the first waiting pieces while fewer than `parallel` are listed or held.
        // A listed front piece is on its way to the consumer: it does not hold a place.
        let mut held = queue
            .iter()
            .enumerate()
            .filter(|(i, s)| match s {
                Slot::Waiting(_) => false,
                Slot::Ready(_) => *i > 0,
                Slot::Listing(_) => true,
            })
            .count();
        for (i, slot) in queue.iter_mut().enumerate() {
            // The front piece always starts: the consumer waits for it.
            if held >= parallel && i > 0 {
                break;
            }
            if !matches!(slot, Slot::Waiting(_)) {
                continue;
            }
            let id = next_id;
            next_id += 1;
            let Slot::Waiting(piece) = std::mem::replace(slot, Slot::Listing(id)) else {
                unreachable!("a waiting slot")
            };
            let (store, prefix) = (store.clone(), prefix.to_string());
            let fixed = split.then(|| fixed.clone());
            let level = piece.level;
            running.spawn(async move {
                let r = list_piece(&store, &prefix, piece, fixed.as_deref()).await;
                (id, level, r)
            });
            held += 1;
        }
        let front_ready = matches!(queue.front(), Some(Slot::Ready(_)));
        if queue.is_empty() {
            return Ok(());
        }
        tokio::select! {
            permit = out.reserve(), if front_ready => {
                let Ok(permit) = permit else { return Ok(()) };
                if let Some(Slot::Ready(pages)) = queue.front_mut() {
                    if let Some(page) = pages.pop_front() {
                        permit.send(page);
                    }
                    if pages.is_empty() {
                        queue.pop_front();
                    }
                }
            }
            Some(joined) = running.join_next() => {
                let (id, level, r) = joined.expect("piece lister");
                let done = r?;
                if let Some(level) = level {
                    let t = tried.entry(level).or_default();
                    if done.pages.is_empty() && done.rest.is_empty() {
                        t.0 += 1;
                    } else {
                        t.1 += 1;
                    }
                    if t.0 >= 8 && t.1 * 8 < t.0 && !fixed.contains(&level) {
                        let mut f = (*fixed).clone();
                        f.insert(level);
                        fixed = Arc::new(f);
                    }
                }
                let at = queue
                    .iter()
                    .position(|s| matches!(s, Slot::Listing(i) if *i == id))
                    .expect("a listed piece is queued");
                if done.rest.len() > 1 && !said {
                    said = true;
                    tracing::debug!("listing ranges in parallel: {} cut", done.rest.len());
                }
                queue[at] = Slot::Ready(done.pages.into());
                for (i, piece) in done.rest.into_iter().enumerate() {
                    queue.insert(at + 1 + i, Slot::Waiting(piece));
                }
                if matches!(&queue[at], Slot::Ready(p) if p.is_empty()) {
                    queue.remove(at);
                }
            }
        }
    }
}

/// List one piece for up to [`PIECE_PAGES`] pages with keys; if it goes on past them, the
/// rest is a piece that goes on from there and, where `fixed` is given (parallel listing),
/// pieces cut from it at the character positions not in `fixed`.
async fn list_piece(
    store: &Store,
    root: &str,
    piece: Piece,
    fixed: Option<&BTreeSet<usize>>,
) -> Result<PieceListed, S3Error> {
    let prefix = piece.prefix.as_str();
    let shown = store.shown(prefix);
    let mut token = piece.token.clone();
    let mut seen: std::collections::HashSet<String> = token.iter().cloned().collect();
    let mut last = piece.after.clone();
    let mut empty = 0u32;
    let mut pages: Vec<Vec<Listed>> = Vec::new();
    loop {
        let start = token.is_none().then_some(piece.after.as_str());
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
        if let Some(first) = page.objects.first()
            && first.key <= last
        {
            return Err(S3Error::protocol(
                "list",
                &shown,
                format!(
                    "the listing does not advance: after {last:?} the next page starts at {:?}",
                    first.key
                ),
            ));
        }
        let (kept, past) = keep_until(page.objects, piece.until.as_deref());
        if let Some(o) = kept.last() {
            last = o.key.clone();
            empty = 0;
        } else {
            empty += 1;
        }
        if !kept.is_empty() {
            pages.push(kept);
        }
        if past || page.next.is_none() {
            return Ok(PieceListed {
                pages,
                rest: Vec::new(),
            });
        }
        token = page.next;
        if pages.len() >= PIECE_PAGES {
            let cuts = match fixed {
                Some(fixed) => {
                    let keys: Vec<&str> = pages.iter().flatten().map(|o| o.key.as_str()).collect();
                    cut_points(&keys, piece.until.as_deref(), root.chars().count(), fixed)
                }
                None => Vec::new(),
            };
            // The chain goes on to the first cut (or the end) from where it is.
            let mut rest = Vec::with_capacity(cuts.len() + 1);
            let mut ends = cuts
                .into_iter()
                .map(|(c, at)| (Some(c), Some(at)))
                .chain([(piece.until.clone(), None)]);
            let (until, level) = ends.next().expect("the piece's own end");
            rest.push(Piece {
                after: last,
                until: until.clone(),
                token,
                prefix: piece.prefix.clone(),
                level,
            });
            let mut after = until.unwrap_or_default();
            for (until, level) in ends {
                let next = until.clone().unwrap_or_default();
                rest.push(Piece::cut(root, after, until, level));
                after = next;
            }
            return Ok(PieceListed { pages, rest });
        }
    }
}

/// Empty pages in a row, each promising more, after which a listing is taken to be looping.
const MAX_EMPTY_PAGES: u32 = 1000;

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

/// Where to cut what is left of a piece after its listed `keys` (sorted, at least one), up to
/// `until`: sorted keys, each after the last listed key and before `until`, no shorter than
/// `floor` characters (the listed prefix), each with the character position it was cut at.
///
/// The listed keys first differ at some character position; the next keys are most likely to
/// differ there too, then at the positions before it. So the cuts are the last key's prefix up
/// to each position, from that one back to the listed prefix (or to where the last key and
/// `until` part), followed by each later character of the keys' alphabet: for content
/// digests, `…/ab3` `…/ab4` … `…/ac` … `…/b` … Where the listed keys differ, cuts are spaced
/// to hold about a page each, judged by how far the keys got; positions in `fixed` (where
/// earlier cuts found no keys) are left out.
fn cut_points(
    keys: &[&str],
    until: Option<&str>,
    floor: usize,
    fixed: &BTreeSet<usize>,
) -> Vec<(String, usize)> {
    let (Some(first), Some(last_key)) = (keys.first(), keys.last()) else {
        return Vec::new();
    };
    let last: Vec<char> = last_key.chars().collect();
    let differ = common_prefix(first, last_key).chars().count();
    let coarsest = match until {
        Some(u) => common_prefix(u, last_key).chars().count(),
        None => floor,
    };
    // The characters the keys use from where they differ on (at most 64 keys looked at).
    let step = (keys.len() / 64).max(1);
    let mut ascii = [false; 128];
    let mut other = BTreeSet::new();
    for c in keys
        .iter()
        .step_by(step)
        .flat_map(|k| k.chars().skip(differ))
    {
        match ascii.get_mut(c as usize) {
            Some(seen) => *seen = true,
            None => {
                other.insert(c);
            }
        }
    }
    let alphabet: Vec<char> = (0u8..128)
        .filter(|&b| ascii[b as usize])
        .map(char::from)
        .chain(other)
        .collect();
    if alphabet.is_empty() || coarsest > differ {
        return Vec::new();
    }
    let rank = |c: Option<char>| c.map_or(0, |c| alphabet.partition_point(|&a| a < c));
    // Keys per character at the position where the keys differ.
    let spanned = rank(last.get(differ).copied())
        .saturating_sub(rank(first.chars().nth(differ)))
        .max(1);
    let per_char = keys.len() as f64 / spanned as f64;
    let mut cuts = Vec::new();
    for at in (coarsest..=differ).rev() {
        if at < differ && fixed.contains(&at) {
            continue;
        }
        // Where the keys differ, one cut per page's worth of characters; before, every one.
        let every = if at == differ {
            (PAGE_KEYS / per_char).ceil().max(1.0) as usize
        } else {
            1
        };
        let stem: String = last[..at].iter().collect();
        let here = last.get(at).copied();
        let later = alphabet.iter().filter(|&&c| here.is_none_or(|h| c > h));
        for &c in later.skip(every - 1).step_by(every) {
            let cut = format!("{stem}{c}");
            if until.is_some_and(|u| cut.as_str() >= u) {
                break;
            }
            cuts.push((cut, at));
            if cuts.len() >= MAX_CUTS {
                return cuts;
            }
        }
    }
    cuts
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller that stops waiting while the lister is finishing (sync and check wait on the
    /// listing inside `select!`) must still get the lister's error on the next call: an
    /// error lost there made a listing cut short look complete, and a sync then deleted.
    #[tokio::test]
    async fn a_lister_error_survives_a_caller_that_stops_waiting() {
        let mut listing = Listing::empty();
        let (tx, rx) = mpsc::channel::<Vec<Listed>>(1);
        drop(tx);
        listing.pages = Some(rx);
        listing.task = Some(tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Err(S3Error::protocol(
                "list",
                "b",
                "the listing does not advance",
            ))
        }));
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

    fn digests(n: u64) -> Vec<String> {
        let spread = u64::MAX / n;
        (0..n)
            .map(|i| {
                let h = format!("{:016x}", i * spread);
                format!("blobs/{}/{h}/data", &h[..2])
            })
            .collect()
    }

    /// Cuts are sorted, after the last listed key, before the end, and the first holds
    /// about a page: the rest of a registry's digests is cut by hex digits, nearest first;
    /// positions found fixed are not cut at.
    #[test]
    fn cuts_follow_the_keys_alphabet_nearest_first() {
        let all = digests(1_000_000);
        let listed: Vec<&str> = all[..2000].iter().map(String::as_str).collect();
        let last = *listed.last().unwrap();
        let none = BTreeSet::new();
        let cuts = cut_points(&listed, None, 0, &none);
        assert!(!cuts.is_empty() && cuts.len() <= MAX_CUTS, "{cuts:?}");
        assert!(cuts.windows(2).all(|w| w[0].0 < w[1].0), "{cuts:?}");
        assert!(cuts.iter().all(|(c, _)| c.as_str() > last), "{cuts:?}");
        assert!(
            cuts.iter().all(|(c, at)| c.chars().count() == at + 1),
            "{cuts:?}"
        );
        let count = |a: &str, b: &str| {
            all.iter()
                .filter(|k| k.as_str() > a && k.as_str() <= b)
                .count()
        };
        let first = count(last, &cuts[0].0);
        assert!(
            (300..=3000).contains(&first),
            "first piece {first} keys: {cuts:?}"
        );
        // The digest's first two characters repeat the directory's: once known, not cut at.
        let dir = "blobs/00/".len();
        let fixed = BTreeSet::from([dir, dir + 1]);
        let fewer = cut_points(&listed, None, 0, &fixed);
        assert!(fewer.iter().all(|(_, at)| !fixed.contains(at)), "{fewer:?}");
        assert!(fewer.iter().any(|(c, _)| c == "blobs/01"), "{fewer:?}");
        // With an end, no cut reaches it.
        let until = "blobs/01/";
        let bounded = cut_points(&listed, Some(until), 0, &none);
        assert!(!bounded.is_empty());
        assert!(
            bounded
                .iter()
                .all(|(c, _)| c.as_str() > last && c.as_str() < until),
            "{bounded:?}"
        );
    }

    #[test]
    fn cuts_never_go_below_the_listed_prefix_or_split_a_character() {
        let keys = ["pre/ä1ü", "pre/ä2ü", "pre/ä9ü"];
        let none = BTreeSet::new();
        let cuts = cut_points(&keys, None, 4, &none);
        assert!(!cuts.is_empty());
        assert!(cuts.iter().all(|(c, _)| c.starts_with("pre/")), "{cuts:?}");
        assert!(cuts.iter().all(|(c, _)| c.as_str() > "pre/ä9ü"), "{cuts:?}");
        // One key: cuts extend it.
        let one = cut_points(&["pre/x"], None, 4, &none);
        assert!(
            one.iter()
                .all(|(c, _)| c.as_str() > "pre/x" && c.starts_with("pre/")),
            "{one:?}"
        );
        assert!(cut_points(&[], None, 0, &none).is_empty());
    }
}
