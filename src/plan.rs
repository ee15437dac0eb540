//! Stage 3: merge the source walk with the destination listing, both streamed in key order,
//! and decide, per key, what to do. `sync`, `copy` and `check` share the merge; only the
//! decision differs.
//!
//! The merge holds one pending entry per side plus the page being consumed, so planning a tree
//! of any size takes the same memory. The decisions are pure functions of their inputs: no
//! I/O, no clocks. In particular the skip rule uses only what the listing returned (size,
//! LastModified), so a rerun sends no HEAD per object.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::list::Listing;
use crate::s3::S3Error;
use crate::walk::{Item, SrcEntry, WalkError};

/// An object in the destination listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DstEntry {
    /// Key relative to the destination prefix.
    pub rel: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: SystemTime,
}

/// One step of the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair<'a> {
    SrcOnly(&'a SrcEntry),
    Both(&'a SrcEntry, &'a DstEntry),
    DstOnly(&'a DstEntry),
}

/// One step of the merge, owning its entries.
#[derive(Debug)]
pub enum Step {
    SrcOnly(SrcEntry),
    Both(SrcEntry, DstEntry),
    DstOnly(DstEntry),
    /// A source entry that could not be used (see [`WalkError`]).
    WalkError(WalkError),
    /// A FIFO, socket or device in the source.
    Special(String),
}

impl Step {
    /// The pair to decide on; `None` for walk errors and special files.
    pub fn pair(&self) -> Option<Pair<'_>> {
        match self {
            Step::SrcOnly(s) => Some(Pair::SrcOnly(s)),
            Step::Both(s, d) => Some(Pair::Both(s, d)),
            Step::DstOnly(d) => Some(Pair::DstOnly(d)),
            Step::WalkError(_) | Step::Special(_) => None,
        }
    }
}

/// The walk and the listing, merged as they arrive.
pub struct Merge {
    src: mpsc::Receiver<Item>,
    src_done: bool,
    src_next: Option<SrcEntry>,
    dst: Listing,
    dst_done: bool,
    dst_next: VecDeque<DstEntry>,
}

impl Merge {
    pub fn new(src: mpsc::Receiver<Item>, dst: Listing) -> Merge {
        Merge {
            src,
            src_done: false,
            src_next: None,
            dst,
            dst_done: false,
            dst_next: VecDeque::new(),
        }
    }

    /// The next step in key order; `None` at the end; an error if the listing failed (the
    /// merge is over then). Cancel-safe: whatever arrived is kept for the next call.
    pub async fn next(&mut self) -> Option<Result<Step, S3Error>> {
        loop {
            if self.src_next.is_none() && !self.src_done {
                match self.src.recv().await {
                    Some(Item::File(f)) => self.src_next = Some(f),
                    Some(Item::Error(e)) => return Some(Ok(Step::WalkError(e))),
                    Some(Item::Special(p)) => return Some(Ok(Step::Special(p))),
                    Some(Item::End) => self.src_done = true,
                    None => {
                        // The walk died: an error, so nothing it did not reach is deleted.
                        self.src_done = true;
                        return Some(Ok(Step::WalkError(WalkError::Io {
                            path: ".".into(),
                            message: "the walk of the source stopped before its end".into(),
                        })));
                    }
                }
                continue;
            }
            if self.dst_next.is_empty() && !self.dst_done {
                match self.dst.next().await {
                    Some(Ok(page)) => self.dst_next.extend(page),
                    Some(Err(e)) => {
                        self.dst_done = true;
                        return Some(Err(e));
                    }
                    None => self.dst_done = true,
                }
                continue;
            }
            let order = match (&self.src_next, self.dst_next.front()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(s), Some(d)) => s.rel.as_bytes().cmp(d.rel.as_bytes()),
            };
            let step = match order {
                Ordering::Less => Step::SrcOnly(self.src_next.take()?),
                Ordering::Greater => Step::DstOnly(self.dst_next.pop_front()?),
                Ordering::Equal => Step::Both(self.src_next.take()?, self.dst_next.pop_front()?),
            };
            return Some(Ok(step));
        }
    }
}

/// How `sync`/`copy` decide that an existing object is already up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SkipRule {
    /// Same size and the object was written in a later second than the file's mtime
    /// (listing only).
    #[default]
    SizeAndTime,
    /// Same size alone (`--size-only`).
    SizeOnly,
    /// Same size and same content hash (`--checksum`): needs the file hashed.
    Checksum,
    /// The object exists at all (`--ignore-existing`).
    Exists,
    /// The object is newer than the file (`--update`): its LastModified is in a later second
    /// than the file's mtime. Otherwise the size and time rule decides.
    Update,
}

/// Why a file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    New,
    SizeDiffers,
    /// The file was modified after the object was written.
    Newer,
    /// `--checksum` found different content (decided after hashing).
    ContentDiffers,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new file",
            Reason::SizeDiffers => "size differs",
            Reason::Newer => "source is newer",
            Reason::ContentDiffers => "content differs",
        }
    }
}

/// What to do with one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Upload(Reason),
    /// Same size; decide after hashing (only with `--checksum`).
    CompareContent,
    Skip,
    /// Only in the destination: deleted by `sync` when the run had no errors.
    Delete,
}

/// The sync/copy decision for one pair.
pub fn decide(pair: &Pair<'_>, rule: SkipRule) -> Decision {
    match pair {
        Pair::SrcOnly(_) => Decision::Upload(Reason::New),
        Pair::DstOnly(_) => Decision::Delete,
        Pair::Both(s, d) => {
            let object_newer = whole_seconds(d.last_modified) > whole_seconds(s.mtime);
            match rule {
                SkipRule::Exists => Decision::Skip,
                SkipRule::Update if object_newer => Decision::Skip,
                _ if s.size != d.size => Decision::Upload(Reason::SizeDiffers),
                SkipRule::SizeOnly => Decision::Skip,
                SkipRule::Checksum => Decision::CompareContent,
                SkipRule::SizeAndTime | SkipRule::Update if object_newer => Decision::Skip,
                SkipRule::SizeAndTime | SkipRule::Update => Decision::Upload(Reason::Newer),
            }
        }
    }
}

/// S3's LastModified has one-second resolution, so compare whole seconds, and require the
/// object to be from a *later* second: a file changed in the same second its object was written
/// is uploaded again (once) rather than risk skipping a change.
fn whole_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }
    fn src(rel: &str, size: u64, mtime: SystemTime) -> SrcEntry {
        SrcEntry {
            rel: rel.into(),
            path: rel.into(),
            size,
            mtime,
        }
    }
    fn dst(rel: &str, size: u64, lm: SystemTime) -> DstEntry {
        DstEntry {
            rel: rel.into(),
            size,
            etag: String::new(),
            last_modified: lm,
        }
    }

    #[test]
    fn ignore_existing_and_update() {
        let d = dst("f", 5, t(0));
        let both = |size, mtime, lm| {
            (
                src("f", size, t(mtime)),
                DstEntry {
                    last_modified: t(lm),
                    ..d.clone()
                },
            )
        };
        let cases = [
            // (file size, file mtime, object LastModified, rule, decision)
            (9, 100, 50, SkipRule::Exists, Decision::Skip),
            (9, 100, 200, SkipRule::Update, Decision::Skip),
            (
                9,
                200,
                100,
                SkipRule::Update,
                Decision::Upload(Reason::SizeDiffers),
            ),
            (
                5,
                200,
                100,
                SkipRule::Update,
                Decision::Upload(Reason::Newer),
            ),
            (5, 100, 200, SkipRule::Update, Decision::Skip),
        ];
        for (size, mtime, lm, rule, want) in cases {
            let (s, d) = both(size, mtime, lm);
            assert_eq!(
                decide(&Pair::Both(&s, &d), rule),
                want,
                "{rule:?} {size} {mtime} {lm}"
            );
        }
        let new = src("f", 1, t(1));
        assert_eq!(
            decide(&Pair::SrcOnly(&new), SkipRule::Exists),
            Decision::Upload(Reason::New)
        );
    }

    /// Merge these source items with these listing pages, shown as `<src`, `=both`, `>dst`,
    /// `!error`, with the sync decision for each pair.
    async fn merged(items: Vec<Item>, pages: Vec<Vec<DstEntry>>) -> Vec<String> {
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            for i in items {
                tx.send(i).await.unwrap();
            }
        });
        let mut m = Merge::new(rx, Listing::of(pages));
        let mut out = Vec::new();
        while let Some(step) = m.next().await {
            let step = step.unwrap();
            let decision = step.pair().map(|p| decide(&p, SkipRule::SizeAndTime));
            out.push(match (&step, decision) {
                (Step::SrcOnly(s), Some(d)) => format!("<{} {d:?}", s.rel),
                (Step::Both(s, _), Some(d)) => format!("={} {d:?}", s.rel),
                (Step::DstOnly(d), Some(x)) => format!(">{} {x:?}", d.rel),
                (Step::WalkError(e), None) => format!("!{}", e.path()),
                (other, d) => panic!("{other:?} {d:?}"),
            });
        }
        out
    }

    #[tokio::test]
    async fn merges_streams_in_byte_order_across_pages() {
        let items = vec![
            Item::File(src("a", 1, t(0))),
            Item::File(src("b.txt", 1, t(50))),
            Item::Error(WalkError::Symlink { path: "b/l".into() }),
            Item::File(src("b/a", 2, t(5))),
            Item::File(src("d", 3, t(5))),
            Item::End,
        ];
        let pages = vec![
            vec![dst("b.txt", 1, t(10)), dst("b/", 0, t(0))],
            vec![],
            vec![dst("b/a", 2, t(10)), dst("c", 1, t(0))],
        ];
        // Directory markers ("b/") never take part; '.' sorts before '/'.
        assert_eq!(
            merged(items, pages).await,
            vec![
                "<a Upload(New)",
                "=b.txt Upload(Newer)",
                "!b/l",
                "=b/a Skip",
                ">c Delete",
                "<d Upload(New)",
            ]
        );
        assert!(merged(vec![Item::End], vec![]).await.is_empty());
        assert_eq!(
            merged(vec![Item::End], vec![vec![dst("x", 1, t(0))]]).await,
            vec![">x Delete"]
        );
        // A walk that stops without saying it is complete is an error, which keeps sync from
        // deleting what it did not reach.
        assert_eq!(
            merged(
                vec![Item::File(src("a", 1, t(0)))],
                vec![vec![dst("x", 1, t(0))]]
            )
            .await,
            vec!["<a Upload(New)", "!.", ">x Delete"]
        );
    }

    #[test]
    fn decisions() {
        let s = src(
            "k",
            10,
            SystemTime::UNIX_EPOCH + Duration::from_millis(100_500),
        );
        // (dst size, dst last modified, rule, decision)
        let cases = [
            (
                10,
                t(100),
                SkipRule::SizeAndTime,
                Decision::Upload(Reason::Newer),
            ), // same second
            (10, t(101), SkipRule::SizeAndTime, Decision::Skip),
            (
                10,
                t(99),
                SkipRule::SizeAndTime,
                Decision::Upload(Reason::Newer),
            ),
            (
                11,
                t(200),
                SkipRule::SizeAndTime,
                Decision::Upload(Reason::SizeDiffers),
            ),
            (10, t(1), SkipRule::SizeOnly, Decision::Skip),
            (
                9,
                t(1),
                SkipRule::SizeOnly,
                Decision::Upload(Reason::SizeDiffers),
            ),
            (10, t(200), SkipRule::Checksum, Decision::CompareContent),
            (
                0,
                t(200),
                SkipRule::Checksum,
                Decision::Upload(Reason::SizeDiffers),
            ),
        ];
        for (size, lm, rule, want) in cases {
            let d = dst("k", size, lm);
            assert_eq!(
                decide(&Pair::Both(&s, &d), rule),
                want,
                "size={size} lm={lm:?} {rule:?}"
            );
        }
        assert_eq!(
            decide(&Pair::SrcOnly(&s), SkipRule::SizeOnly),
            Decision::Upload(Reason::New)
        );
        let d = dst("x", 1, t(0));
        assert_eq!(
            decide(&Pair::DstOnly(&d), SkipRule::SizeAndTime),
            Decision::Delete
        );
    }
}
