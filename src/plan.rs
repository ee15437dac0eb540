//! Stage 3: decide, per key of the march ([`crate::march`]), what `sync` and `copy` do with
//! it: upload, compare content, skip, or delete.
//!
//! The decisions are pure functions of their inputs: no I/O, no clocks. In particular the skip
//! rule uses only what the listing returned (size, LastModified), so a rerun sends no HEAD per
//! object.

use std::time::SystemTime;

use crate::list::DstEntry;
use crate::march::Step;
use crate::walk::SrcEntry;

/// One key of the march, borrowed, for the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair<'a> {
    SrcOnly(&'a SrcEntry),
    Both(&'a SrcEntry, &'a DstEntry),
    DstOnly(&'a DstEntry),
}

impl<'a> Pair<'a> {
    /// The pair a step of the march is about; `None` for an entry that could not be used.
    pub fn of(step: &'a Step<SrcEntry, DstEntry>) -> Option<Pair<'a>> {
        match step {
            Step::SrcOnly(s) => Some(Pair::SrcOnly(s)),
            Step::Both(s, d) => Some(Pair::Both(s, d)),
            Step::DstOnly(d) => Some(Pair::DstOnly(d)),
            Step::Error(_) => None,
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

/// Why the deletions a sync planned were not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteRefusal {
    /// Something failed: what looks extra may only look so.
    Errors,
    /// The source is empty: far more often an unmounted volume or a wrong bucket than an
    /// intent; `--max-delete N` says it is one.
    EmptySource { n: u64 },
    /// More deletions than `--max-delete` allows.
    OverMax { n: u64, max: u64 },
}

impl DeleteRefusal {
    /// One line for the log and the report; `src` names the source, `what` the entries to
    /// delete ("objects", "files").
    pub fn message(&self, src: &str, what: &str) -> String {
        match self {
            DeleteRefusal::Errors => format!("{src}: not deleting {what} as there were IO errors"),
            DeleteRefusal::EmptySource { n } => format!(
                "{src}: not deleting {n} {what}: the source is empty (is the volume mounted, the bucket right?); pass --max-delete {n} to allow it"
            ),
            DeleteRefusal::OverMax { n, max } => format!(
                "not deleting: {n} {what} to delete exceeds --max-delete {max}: raise it or check the source"
            ),
        }
    }
}

/// Whether a sync may make its `n` deletions: only after a run without errors, never
/// emptying the destination because the source looked empty unless `--max-delete` allows
/// it, and never more than `--max-delete`. The same rules hold in every direction.
pub fn may_delete(
    errors: u64,
    source_entries: u64,
    n: u64,
    max_delete: Option<u64>,
) -> Result<(), DeleteRefusal> {
    if n == 0 {
        return Ok(());
    }
    if errors > 0 {
        return Err(DeleteRefusal::Errors);
    }
    match max_delete {
        None if source_entries == 0 => Err(DeleteRefusal::EmptySource { n }),
        Some(max) if n > max => Err(DeleteRefusal::OverMax { n, max }),
        _ => Ok(()),
    }
}

/// Whether two mtimes are the same instant, allowing for a filesystem that keeps whole
/// seconds only.
pub fn same_mtime(a: SystemTime, b: SystemTime) -> bool {
    if a == b {
        return true;
    }
    let split = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| (d.as_secs(), d.subsec_nanos()))
            .unwrap_or((0, 0))
    };
    let ((sa, na), (sb, nb)) = (split(a), split(b));
    sa == sb && (na == 0 || nb == 0)
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
    fn deletions_wait_for_a_clean_run_a_nonempty_source_and_max_delete() {
        use DeleteRefusal::*;
        let table = [
            ((0, 5, 0, None), Ok(())),
            ((3, 0, 0, None), Ok(())),
            ((0, 5, 2, None), Ok(())),
            ((1, 5, 2, None), Err(Errors)),
            ((1, 5, 2, Some(100)), Err(Errors)),
            ((0, 0, 2, None), Err(EmptySource { n: 2 })),
            ((0, 0, 2, Some(2)), Ok(())),
            ((0, 5, 3, Some(2)), Err(OverMax { n: 3, max: 2 })),
            ((0, 5, 2, Some(2)), Ok(())),
        ];
        for ((errors, src, n, max), want) in table {
            assert_eq!(
                may_delete(errors, src, n, max),
                want,
                "{errors} {src} {n} {max:?}"
            );
        }
    }
    #[test]
    fn mtimes_match_exactly_or_to_the_second_where_a_filesystem_drops_fractions() {
        let t = |s, n| SystemTime::UNIX_EPOCH + std::time::Duration::new(s, n);
        assert!(same_mtime(t(10, 5), t(10, 5)));
        assert!(same_mtime(t(10, 5), t(10, 0)));
        assert!(!same_mtime(t(10, 5), t(10, 6)));
        assert!(!same_mtime(t(10, 0), t(11, 0)));
    }
}
