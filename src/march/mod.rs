//! The march: one driver for every command that sets a source beside a destination (`sync`,
//! `copy`, `check`). It reads both sides at once (a local walk or an S3 listing, behind one
//! small [`Side`] trait), merges them in key order and hands each key to the command as one
//! [`Step`]: source only, destination only, or both.
//!
//! It also does the screening every command needs, so that no command repeats it: FIFOs,
//! sockets and devices are skipped with a warning; in registry mode the filesystem driver's
//! in-progress `_uploads` are left out (and counted), every step carries what its path is in
//! the registry, and every blob the destination holds is noted where the command shares it
//! (link ordering in `sync`, link proofs in `check`). The commands keep only their decisions.
//!
//! The command pulls the next step when it has room, rather than the march pushing steps into
//! callbacks: `sync` interleaves the march with its transfers and stops pulling while its
//! queue is full, which is what keeps planning a tree of any size in the same memory. Each
//! side holds one pending entry plus the page being consumed.

pub mod list;
pub mod plan;
pub mod walk;

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::config::registry::{BlobSet, Kind, Layout};
use crate::march::list::{ListedObject, Listing};
use crate::march::walk::{Item, LocalFile, WalkError};
use crate::s3::S3Error;

/// An entry of either side: its key relative to the side's root or prefix, and its size.
pub trait Keyed {
    fn rel(&self) -> &str;
    fn size(&self) -> u64;
}

impl Keyed for LocalFile {
    fn rel(&self) -> &str {
        &self.rel
    }
    fn size(&self) -> u64 {
        self.size
    }
}

impl Keyed for ListedObject {
    fn rel(&self) -> &str {
        &self.rel
    }
    fn size(&self) -> u64 {
        self.size
    }
}

/// What one side hands the march next.
#[derive(Debug)]
pub enum Found<E> {
    Entry(E),
    /// An entry that cannot be used (a symlink, a name that is not UTF-8, …): one error for
    /// the command to count, never the end of the march.
    Error(WalkError),
    /// A FIFO, socket or device.
    Special(String),
}

/// One side of a march: entries in key order; `None` once it is complete; an error if it
/// cannot go on (the march ends there). `next` must be cancel-safe: whatever arrived is kept
/// for the next call.
pub trait Side {
    type Entry: Keyed;
    fn next(&mut self) -> impl Future<Output = Option<Result<Found<Self::Entry>, S3Error>>> + Send;
}

/// A local tree, as [`crate::march::walk::spawn`] walks it.
pub struct LocalSide {
    items: mpsc::Receiver<Item>,
    done: bool,
}

impl LocalSide {
    pub fn new(items: mpsc::Receiver<Item>) -> LocalSide {
        LocalSide { items, done: false }
    }
}

impl Side for LocalSide {
    type Entry = LocalFile;
    async fn next(&mut self) -> Option<Result<Found<LocalFile>, S3Error>> {
        if self.done {
            return None;
        }
        Some(Ok(match self.items.recv().await {
            Some(Item::File(f)) => Found::Entry(f),
            Some(Item::Error(e)) => Found::Error(e),
            Some(Item::Special(p)) => Found::Special(p),
            Some(Item::End) => {
                self.done = true;
                return None;
            }
            None => {
                // The walk died: an error, so nothing it did not reach looks absent.
                self.done = true;
                Found::Error(WalkError::Io {
                    path: ".".into(),
                    message: "the walk of the source stopped before its end".into(),
                })
            }
        }))
    }
}

/// Objects under an S3 prefix, as [`crate::march::list::start`] lists them.
pub struct RemoteSide {
    listing: Listing,
    page: VecDeque<ListedObject>,
}

impl RemoteSide {
    pub fn new(listing: Listing) -> RemoteSide {
        RemoteSide {
            listing,
            page: VecDeque::new(),
        }
    }
}

impl Side for RemoteSide {
    type Entry = ListedObject;
    async fn next(&mut self) -> Option<Result<Found<ListedObject>, S3Error>> {
        loop {
            if let Some(e) = self.page.pop_front() {
                return Some(Ok(Found::Entry(e)));
            }
            match self.listing.next().await? {
                Ok(page) => self.page.extend(page),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// One key of the march, owning its entries.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<S, D> {
    SrcOnly(S),
    Both(S, D),
    DstOnly(D),
    /// An entry of either side that could not be used.
    Error(WalkError),
}

impl<S: Keyed, D: Keyed> Step<S, D> {
    /// The key this step is about.
    pub fn rel(&self) -> &str {
        match self {
            Step::SrcOnly(s) | Step::Both(s, _) => s.rel(),
            Step::DstOnly(d) => d.rel(),
            Step::Error(e) => e.path(),
        }
    }
}

/// Both sides merged in key order, as they arrive; nothing screened.
struct Merge<S: Side, D: Side> {
    src: S,
    src_next: Option<S::Entry>,
    src_done: bool,
    dst: D,
    dst_next: Option<D::Entry>,
    dst_done: bool,
}

/// One item of the raw merge.
enum Merged<S, D> {
    Step(Step<S, D>),
    Special(String),
}

/// What pulling one side gave.
enum Pulled {
    /// An entry, now in the side's slot.
    Entry,
    Error(WalkError),
    Special(String),
    Failed(S3Error),
    End,
}

/// Pull one side's next entry into `slot`. Cancel-safe: an entry is stored as soon as it
/// arrives.
async fn pull<T: Side>(side: &mut T, slot: &mut Option<T::Entry>) -> Pulled {
    match side.next().await {
        Some(Ok(Found::Entry(e))) => {
            *slot = Some(e);
            Pulled::Entry
        }
        Some(Ok(Found::Error(e))) => Pulled::Error(e),
        Some(Ok(Found::Special(p))) => Pulled::Special(p),
        Some(Err(e)) => Pulled::Failed(e),
        None => Pulled::End,
    }
}

impl<S: Side, D: Side> Merge<S, D> {
    /// Cancel-safe: each side's pending entry is kept in `self` as soon as it arrives.
    async fn next(&mut self) -> Option<Result<Merged<S::Entry, D::Entry>, S3Error>> {
        loop {
            let (pulled, src) = if self.src_next.is_none() && !self.src_done {
                (pull(&mut self.src, &mut self.src_next).await, true)
            } else if self.dst_next.is_none() && !self.dst_done {
                (pull(&mut self.dst, &mut self.dst_next).await, false)
            } else {
                return self.step().map(|s| Ok(Merged::Step(s)));
            };
            match pulled {
                Pulled::Entry => {}
                Pulled::End if src => self.src_done = true,
                Pulled::End => self.dst_done = true,
                Pulled::Error(e) => return Some(Ok(Merged::Step(Step::Error(e)))),
                Pulled::Special(p) => return Some(Ok(Merged::Special(p))),
                Pulled::Failed(e) => {
                    self.src_done = true;
                    self.dst_done = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// Both sides have an entry waiting, or are done: the step for the smaller key.
    fn step(&mut self) -> Option<Step<S::Entry, D::Entry>> {
        let order = match (&self.src_next, &self.dst_next) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(d)) => s.rel().as_bytes().cmp(d.rel().as_bytes()),
        };
        Some(match order {
            Ordering::Less => Step::SrcOnly(self.src_next.take()?),
            Ordering::Greater => Step::DstOnly(self.dst_next.take()?),
            Ordering::Equal => Step::Both(self.src_next.take()?, self.dst_next.take()?),
        })
    }
}

/// A step, with what its key is in the registry (registry mode only).
#[derive(Debug, PartialEq, Eq)]
pub struct Marched<S, D> {
    pub step: Step<S, D>,
    pub kind: Option<Kind>,
}

/// What registry mode changes in a march.
#[derive(Debug, Clone)]
pub struct Registry {
    pub layout: Layout,
    /// Keep the driver's `_uploads` in the march.
    pub include_uploads: bool,
    /// Blobs the destination holds: every one the march meets is added.
    pub dst_blobs: Arc<Mutex<BlobSet>>,
}

/// The march: both sides merged in key order and screened.
pub struct March<S: Side, D: Side> {
    merge: Merge<S, D>,
    registry: Option<Registry>,
    /// Registry mode: source files of in-progress uploads (`_uploads`) left out, and their bytes.
    pub uploads_skipped: u64,
    pub uploads_skipped_bytes: u64,
}

impl<S: Side, D: Side> March<S, D> {
    pub fn new(src: S, dst: D, registry: Option<Registry>) -> March<S, D> {
        March {
            merge: Merge {
                src,
                src_next: None,
                src_done: false,
                dst,
                dst_next: None,
                dst_done: false,
            },
            registry,
            uploads_skipped: 0,
            uploads_skipped_bytes: 0,
        }
    }

    /// The next step in key order; `None` at the end; an error if a side could not go on (the
    /// march is over then). Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Marched<S::Entry, D::Entry>, S3Error>> {
        loop {
            let step = match self.merge.next().await? {
                Err(e) => return Some(Err(e)),
                Ok(Merged::Special(p)) => {
                    tracing::warn!("{p}: not a regular file (fifo, socket or device): skipped");
                    continue;
                }
                Ok(Merged::Step(step)) => step,
            };
            let Some(reg) = &self.registry else {
                return Some(Ok(Marched { step, kind: None }));
            };
            if let Step::Error(_) = step {
                return Some(Ok(Marched { step, kind: None }));
            }
            let kind = reg.layout.kind(step.rel());
            match (&kind, &step) {
                // The filesystem driver's in-progress uploads mean nothing to any other
                // storage: left out of every command, and so never deleted.
                (Kind::Upload, _) if !reg.include_uploads => {
                    if let Step::SrcOnly(s) | Step::Both(s, _) = &step {
                        self.uploads_skipped += 1;
                        self.uploads_skipped_bytes += s.size();
                    }
                    continue;
                }
                (Kind::Blob { digest }, Step::Both(..) | Step::DstOnly(_)) => {
                    reg.dst_blobs
                        .lock()
                        .expect("destination blobs")
                        .insert(digest);
                }
                _ => {}
            }
            return Some(Ok(Marched {
                step,
                kind: Some(kind),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }
    fn src(rel: &str, size: u64) -> LocalFile {
        LocalFile {
            rel: rel.into(),
            path: rel.into(),
            size,
            mtime: t(0),
            ctime: t(0),
        }
    }
    fn dst(rel: &str, size: u64) -> ListedObject {
        ListedObject {
            rel: rel.into(),
            size,
            etag: String::new(),
            last_modified: t(0),
        }
    }

    fn local(items: Vec<Item>) -> LocalSide {
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            for i in items {
                tx.send(i).await.unwrap();
            }
        });
        LocalSide::new(rx)
    }

    /// March these source items against these listing pages, shown as `<src`, `=both`,
    /// `>dst`, `!error`, with the registry kind when there is one.
    async fn marched(
        items: Vec<Item>,
        pages: Vec<Vec<ListedObject>>,
        registry: Option<Registry>,
    ) -> Vec<String> {
        let mut m = March::new(local(items), RemoteSide::new(Listing::of(pages)), registry);
        let mut out = Vec::new();
        while let Some(step) = m.next().await {
            let Marched { step, kind } = step.unwrap();
            let mut line = match &step {
                Step::SrcOnly(s) => format!("<{}", s.rel),
                Step::Both(s, d) => {
                    assert_eq!(s.rel, d.rel);
                    format!("={}", s.rel)
                }
                Step::DstOnly(d) => format!(">{}", d.rel),
                Step::Error(e) => format!("!{}", e.path()),
            };
            if let Some(k) = kind {
                line += &format!(" {k:?}");
            }
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn merges_both_sides_in_byte_order_across_pages() {
        let items = vec![
            Item::File(src("a", 1)),
            Item::File(src("b.txt", 1)),
            Item::Error(WalkError::Symlink { path: "b/l".into() }),
            Item::Special("b/fifo".into()),
            Item::File(src("b/a", 2)),
            Item::File(src("d", 3)),
            Item::End,
        ];
        let pages = vec![
            vec![dst("b.txt", 1), dst("b/", 0)],
            vec![],
            vec![dst("b/a", 2), dst("c", 1)],
        ];
        // Directory markers ("b/") never take part; '.' sorts before '/'; special files are
        // skipped with a warning.
        assert_eq!(
            marched(items, pages, None).await,
            vec!["<a", "=b.txt", "!b/l", "=b/a", ">c", "<d"]
        );
        assert!(marched(vec![Item::End], vec![], None).await.is_empty());
        assert_eq!(
            marched(vec![Item::End], vec![vec![dst("x", 1)]], None).await,
            vec![">x"]
        );
        // A walk that stops without saying it is complete is an error, which keeps sync from
        // deleting what it did not reach.
        assert_eq!(
            marched(vec![Item::File(src("a", 1))], vec![vec![dst("x", 1)]], None).await,
            vec!["<a", "!.", ">x"]
        );
    }

    #[tokio::test]
    async fn registry_mode_screens_uploads_and_notes_the_destinations_blobs() {
        let hex = |c: char| c.to_string().repeat(64);
        let (a, b, c) = (hex('a'), hex('b'), hex('c'));
        let blob = |h: &str| format!("blobs/sha256/{}/{h}/data", &h[..2]);
        let upload = "repositories/p/_uploads/u1/data";
        let link = format!("repositories/p/_layers/sha256/{a}/link");
        let blobs = Arc::new(Mutex::new(BlobSet::default()));
        let registry = |include_uploads| Registry {
            layout: Layout { v2: String::new() },
            include_uploads,
            dst_blobs: blobs.clone(),
        };
        let items = || {
            vec![
                Item::File(src(&blob(&a), 10)),
                Item::File(src(&blob(&b), 20)),
                Item::File(src(&link, 71)),
                Item::File(src(upload, 5)),
                Item::End,
            ]
        };
        let pages = || vec![vec![dst(&blob(&a), 10), dst(&blob(&c), 30)]];
        let mut m = March::new(
            local(items()),
            RemoteSide::new(Listing::of(pages())),
            Some(registry(false)),
        );
        let mut rels = Vec::new();
        while let Some(s) = m.next().await {
            let s = s.unwrap();
            rels.push((s.step.rel().to_string(), s.kind.unwrap()));
        }
        assert_eq!(
            rels,
            vec![
                (blob(&a), Kind::Blob { digest: a.clone() }),
                (blob(&b), Kind::Blob { digest: b.clone() }),
                (blob(&c), Kind::Blob { digest: c.clone() }),
                (
                    link.clone(),
                    Kind::Link {
                        path_digest: Some(a.clone())
                    }
                ),
            ],
            "_uploads is left out"
        );
        assert_eq!((m.uploads_skipped, m.uploads_skipped_bytes), (1, 5));
        // Only blobs the destination holds are noted: a (both sides) and c (destination only).
        {
            let held = blobs.lock().unwrap();
            assert_eq!(held.len(), 2);
            assert!(held.contains(&a) && held.contains(&c) && !held.contains(&b));
        }

        let with = marched(items(), pages(), Some(registry(true))).await;
        assert!(with.contains(&format!("<{upload} Upload")), "{with:?}");
    }
}
