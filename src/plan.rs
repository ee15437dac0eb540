//! Stage 3: merge the sorted source walk with the sorted destination listing and decide, per
//! key, what to do. `sync`, `copy` and `check` share the merge; only the decision differs.
//!
//! Everything here is a pure function of its inputs: no I/O, no clocks. In particular the skip
//! rule uses only what the listing returned (size, LastModified), so a rerun sends no HEAD per
//! object.

use std::cmp::Ordering;
use std::time::SystemTime;

use crate::walk::SrcEntry;

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

/// Walk two key-sorted slices in step (both sorted by the bytes of `rel`).
pub fn merge<'a>(src: &'a [SrcEntry], dst: &'a [DstEntry]) -> impl Iterator<Item = Pair<'a>> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let s = src.get(i);
        let d = dst.get(j);
        let order = match (s, d) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(d)) => s.rel.as_bytes().cmp(d.rel.as_bytes()),
        };
        Some(match order {
            Ordering::Less => {
                i += 1;
                Pair::SrcOnly(s?)
            }
            Ordering::Greater => {
                j += 1;
                Pair::DstOnly(d?)
            }
            Ordering::Equal => {
                i += 1;
                j += 1;
                Pair::Both(s?, d?)
            }
        })
    })
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
            if s.size != d.size {
                return Decision::Upload(Reason::SizeDiffers);
            }
            match rule {
                SkipRule::SizeOnly => Decision::Skip,
                SkipRule::Checksum => Decision::CompareContent,
                SkipRule::SizeAndTime => {
                    if whole_seconds(d.last_modified) > whole_seconds(s.mtime) {
                        Decision::Skip
                    } else {
                        Decision::Upload(Reason::Newer)
                    }
                }
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

/// The work a sync or copy has to do.
#[derive(Debug, Default)]
pub struct Plan {
    pub uploads: Vec<(SrcEntry, Reason)>,
    pub compares: Vec<(SrcEntry, DstEntry)>,
    pub skipped: u64,
    pub skipped_bytes: u64,
    pub deletes: Vec<DstEntry>,
}

/// Build the plan from the walk and the listing.
pub fn plan(src: &[SrcEntry], dst: &[DstEntry], rule: SkipRule) -> Plan {
    let mut p = Plan::default();
    for pair in merge(src, dst) {
        match (decide(&pair, rule), pair) {
            (Decision::Upload(r), Pair::SrcOnly(s) | Pair::Both(s, _)) => {
                p.uploads.push((s.clone(), r))
            }
            (Decision::CompareContent, Pair::Both(s, d)) => p.compares.push((s.clone(), d.clone())),
            (Decision::Skip, Pair::Both(s, _)) => {
                p.skipped += 1;
                p.skipped_bytes += s.size;
            }
            (Decision::Delete, Pair::DstOnly(d)) => p.deletes.push(d.clone()),
            (d, pair) => unreachable!("decision {d:?} for {pair:?}"),
        }
    }
    p
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
    fn merge_in_byte_order() {
        let s = [
            src("a", 1, t(0)),
            src("b.txt", 1, t(0)),
            src("b/a", 1, t(0)),
        ];
        let d = [dst("b.txt", 1, t(0)), dst("b/", 0, t(0)), dst("c", 1, t(0))];
        let got: Vec<String> = merge(&s, &d)
            .map(|p| match p {
                Pair::SrcOnly(s) => format!("<{}", s.rel),
                Pair::Both(s, _) => format!("={}", s.rel),
                Pair::DstOnly(d) => format!(">{}", d.rel),
            })
            .collect();
        assert_eq!(got, vec!["<a", "=b.txt", ">b/", "<b/a", ">c"]);
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

    #[test]
    fn plan_counts() {
        let s = [
            src("changed", 3, t(50)),
            src("new", 1, t(5)),
            src("same", 2, t(5)),
        ];
        let d = [
            dst("changed", 3, t(10)),
            dst("gone", 4, t(1)),
            dst("same", 2, t(10)),
        ];
        let p = plan(&s, &d, SkipRule::SizeAndTime);
        let up: Vec<_> = p
            .uploads
            .iter()
            .map(|(s, r)| (s.rel.as_str(), *r))
            .collect();
        assert_eq!(up, vec![("changed", Reason::Newer), ("new", Reason::New)]);
        assert_eq!((p.skipped, p.skipped_bytes), (1, 2));
        assert_eq!(p.deletes.len(), 1);
        assert_eq!(p.deletes[0].rel, "gone");
    }
}
