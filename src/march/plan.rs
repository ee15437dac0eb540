//! Stage 3: decide, per key of the march ([`crate::march`]), what `sync` and `copy` do with
//! it: upload, compare content, skip, or delete.
//!
//! The decisions are pure functions of their inputs: no I/O, no clocks. The skip rule is
//! rclone's (same size and same mtime, else the content decides), decided from the listing
//! alone for every file nothing has touched since its object was written, so a rerun of an
//! untouched tree sends no request per object; only a file touched since (its ctime, which no
//! tool can set back, says so) costs a HEAD for the mtime its object records ([`after_head`]).

use std::time::SystemTime;

use crate::march::Step;
use crate::march::list::ListedObject;
use crate::march::walk::LocalFile;

/// One key of the march, borrowed, for the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair<'a> {
    SrcOnly(&'a LocalFile),
    Both(&'a LocalFile, &'a ListedObject),
    DstOnly(&'a ListedObject),
}

impl<'a> Pair<'a> {
    /// The pair a step of the march is about; `None` for an entry that could not be used.
    pub fn of(step: &'a Step<LocalFile, ListedObject>) -> Option<Pair<'a>> {
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
    /// rclone's rule: same size and the same mtime as the object records, else the same
    /// content (whose object then gets the file's mtime). Decided from the listing when the
    /// object was written in a later second than the file's mtime and ctime (nothing touched
    /// the file since); otherwise from the object's recorded mtime (a HEAD), then the content.
    #[default]
    SizeAndTime,
    /// `--use-server-modtime`: same size and the object written in a later second than the
    /// file's mtime (the listing only, and blind to files set back in time).
    ServerTime,
    /// Same size alone (`--size-only`).
    SizeOnly,
    /// Same size and same content hash (`--checksum`): needs the file hashed.
    Checksum,
    /// The object exists at all (`--ignore-existing`).
    Exists,
    /// `--update`: the object is kept when its mtime (recorded, else LastModified) is newer
    /// than the file's; otherwise [`SkipRule::SizeAndTime`] decides.
    Update,
    /// `--update --use-server-modtime`: the object is kept when its LastModified is in a later
    /// second than the file's mtime; otherwise [`SkipRule::ServerTime`] decides.
    UpdateServerTime,
}

/// Why a file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    New,
    SizeDiffers,
    /// The file was modified after the object was written.
    Newer,
    /// The file's mtime is not the one its object records, and the content differs (or
    /// cannot be compared).
    MtimeDiffers,
    /// `--checksum` found different content (decided after hashing).
    ContentDiffers,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new file",
            Reason::SizeDiffers => "size differs",
            Reason::Newer => "source is newer",
            Reason::MtimeDiffers => "modification time and content differ",
            Reason::ContentDiffers => "content differs",
        }
    }
}

/// What to do with one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Upload(Reason),
    /// Same size; decide after hashing (`--checksum`, or after [`Decision::ReadMtime`]).
    CompareContent,
    /// Read the mtime the object records (a HEAD), then decide with [`after_head`].
    ReadMtime,
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
            let written = whole_seconds(d.last_modified);
            let untouched = untouched_since(s, d);
            let same_size = s.size == d.size;
            match rule {
                SkipRule::Exists => Decision::Skip,
                SkipRule::UpdateServerTime if written > whole_seconds(s.mtime) => Decision::Skip,
                _ if !same_size && rule != SkipRule::Update => {
                    Decision::Upload(Reason::SizeDiffers)
                }
                SkipRule::SizeOnly => Decision::Skip,
                SkipRule::Checksum => Decision::CompareContent,
                SkipRule::ServerTime | SkipRule::UpdateServerTime => {
                    if written > whole_seconds(s.mtime) {
                        Decision::Skip
                    } else {
                        Decision::Upload(Reason::Newer)
                    }
                }
                SkipRule::SizeAndTime if untouched => Decision::Skip,
                SkipRule::SizeAndTime => Decision::ReadMtime,
                // --update: an object written no later than the file's mtime records an mtime
                // no newer than the file's (it was the file's then): the plain rule decides.
                SkipRule::Update if written <= whole_seconds(s.mtime) => {
                    if same_size {
                        Decision::ReadMtime
                    } else {
                        Decision::Upload(Reason::SizeDiffers)
                    }
                }
                SkipRule::Update if untouched && same_size => Decision::Skip,
                SkipRule::Update => Decision::ReadMtime,
            }
        }
    }
}

/// Whether nothing has touched the file `s` since its object `d` was written: the object's
/// LastModified is in a later second than both the file's mtime and its ctime, so the object
/// holds what the file holds, with its mtime (unless another writer replaced the object).
pub fn untouched_since(s: &LocalFile, d: &ListedObject) -> bool {
    whole_seconds(d.last_modified) > whole_seconds(s.mtime).max(whole_seconds(s.ctime))
}

/// The decision for a pair whose object records the mtime `recorded` (`None`: it records
/// none), once a HEAD has read it ([`Decision::ReadMtime`]): rclone's rules. With
/// [`SkipRule::Update`] an object whose mtime (recorded, else its LastModified) is newer than
/// the file's is kept, and one of the same mtime unless the sizes differ. Otherwise a file of
/// the same size and mtime is unchanged, and the content decides the rest: an upload if it
/// differs, else the object only needs the file's mtime.
pub fn after_head(
    s: &LocalFile,
    d: &ListedObject,
    recorded: Option<SystemTime>,
    rule: SkipRule,
) -> Decision {
    let same_size = s.size == d.size;
    let same = recorded.is_some_and(|r| same_mtime(r, s.mtime));
    if rule == SkipRule::Update {
        let theirs = recorded.unwrap_or(d.last_modified);
        if !same && theirs > s.mtime {
            return Decision::Skip;
        }
    }
    match (same_size, same) {
        (false, _) => Decision::Upload(Reason::SizeDiffers),
        (true, true) => Decision::Skip,
        (true, false) => Decision::CompareContent,
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
    fn src(rel: &str, size: u64, mtime: SystemTime) -> LocalFile {
        LocalFile {
            rel: rel.into(),
            path: rel.into(),
            size,
            mtime,
            ctime: mtime,
        }
    }
    fn dst(rel: &str, size: u64, lm: SystemTime) -> ListedObject {
        ListedObject {
            rel: rel.into(),
            size,
            etag: String::new(),
            last_modified: lm,
        }
    }

    /// A pair: the file (size, mtime, ctime in seconds) and its object (size, LastModified).
    fn pair(f: (u64, u64, u64), o: (u64, u64)) -> (LocalFile, ListedObject) {
        let mut s = src("f", f.0, t(f.1));
        s.ctime = t(f.2);
        (s, dst("f", o.0, t(o.1)))
    }

    /// Every rule on the listing alone: which pairs are settled without a request, and which
    /// need the object's recorded mtime.
    #[test]
    fn decisions_from_the_listing() {
        use Decision::*;
        use SkipRule::*;
        let up = Upload;
        // (file (size, mtime, ctime), object (size, LastModified), rule, decision)
        let table = [
            // Untouched since the upload: no request.
            ((5, 100, 100), (5, 101), SizeAndTime, Skip),
            // Written in the same second as the file: its recorded mtime decides (a HEAD,
            // not an upload).
            ((5, 100, 100), (5, 100), SizeAndTime, ReadMtime),
            // Set back in time (touch -d, cp -p, rsync -a, tar): the ctime says so.
            ((5, 50, 300), (5, 200), SizeAndTime, ReadMtime),
            ((5, 300, 300), (5, 200), SizeAndTime, ReadMtime),
            ((6, 50, 50), (5, 200), SizeAndTime, up(Reason::SizeDiffers)),
            // --use-server-modtime: the LastModified rule, blind to ctimes.
            ((5, 50, 300), (5, 200), ServerTime, Skip),
            ((5, 300, 300), (5, 200), ServerTime, up(Reason::Newer)),
            ((5, 100, 100), (5, 100), ServerTime, up(Reason::Newer)),
            ((6, 50, 50), (5, 200), ServerTime, up(Reason::SizeDiffers)),
            ((5, 1, 999), (5, 1), SizeOnly, Skip),
            ((6, 1, 1), (5, 999), SizeOnly, up(Reason::SizeDiffers)),
            ((5, 1, 1), (5, 999), Checksum, CompareContent),
            ((6, 1, 1), (5, 999), Checksum, up(Reason::SizeDiffers)),
            ((6, 999, 999), (5, 1), Exists, Skip),
            // --update: an object written after the file's mtime may be newer (a HEAD says),
            // unless nothing touched the file since; one written before it is not.
            ((5, 100, 100), (5, 200), Update, Skip),
            ((9, 100, 100), (5, 200), Update, ReadMtime),
            ((5, 100, 300), (5, 200), Update, ReadMtime),
            ((9, 300, 300), (5, 200), Update, up(Reason::SizeDiffers)),
            ((5, 300, 300), (5, 200), Update, ReadMtime),
            ((9, 100, 100), (5, 200), UpdateServerTime, Skip),
            ((5, 300, 300), (5, 200), UpdateServerTime, up(Reason::Newer)),
            (
                (9, 300, 300),
                (5, 200),
                UpdateServerTime,
                up(Reason::SizeDiffers),
            ),
        ];
        for (f, o, rule, want) in table {
            let (s, d) = pair(f, o);
            assert_eq!(
                decide(&Pair::Both(&s, &d), rule),
                want,
                "{f:?} {o:?} {rule:?}"
            );
        }
        let new = src("f", 1, t(1));
        for rule in [SizeAndTime, Exists, Update, ServerTime] {
            assert_eq!(decide(&Pair::SrcOnly(&new), rule), up(Reason::New));
        }
        let d = dst("x", 1, t(0));
        assert_eq!(decide(&Pair::DstOnly(&d), SizeAndTime), Delete);
    }

    /// Once the recorded mtime is known: rclone's rule (and `--update`'s).
    #[test]
    fn decisions_after_reading_the_recorded_mtime() {
        use Decision::*;
        use SkipRule::*;
        let ns = |s, n| SystemTime::UNIX_EPOCH + Duration::new(s, n);
        // (file (size, mtime, ctime), object (size, LastModified), recorded, rule, decision)
        let table = [
            ((5, 100, 300), (5, 200), Some(t(100)), SizeAndTime, Skip),
            (
                (5, 50, 300),
                (5, 200),
                Some(t(100)),
                SizeAndTime,
                CompareContent,
            ),
            (
                (5, 150, 300),
                (5, 200),
                Some(t(100)),
                SizeAndTime,
                CompareContent,
            ),
            // Another tool's object records no mtime: the content decides.
            ((5, 100, 300), (5, 200), None, SizeAndTime, CompareContent),
            ((5, 100, 100), (5, 200), Some(t(300)), Update, Skip),
            ((9, 100, 100), (5, 200), Some(t(300)), Update, Skip),
            ((9, 100, 100), (5, 200), None, Update, Skip),
            (
                (9, 100, 100),
                (5, 200),
                Some(t(100)),
                Update,
                Upload(Reason::SizeDiffers),
            ),
            ((5, 100, 100), (5, 200), Some(t(100)), Update, Skip),
            ((5, 100, 300), (5, 200), Some(t(50)), Update, CompareContent),
            (
                (9, 100, 300),
                (5, 200),
                Some(t(50)),
                Update,
                Upload(Reason::SizeDiffers),
            ),
        ];
        for (f, o, recorded, rule, want) in table {
            let (s, d) = pair(f, o);
            assert_eq!(
                after_head(&s, &d, recorded, rule),
                want,
                "{f:?} {o:?} {recorded:?} {rule:?}"
            );
        }
        // To the precision of the filesystem: a whole-second mtime matches its recorded
        // nanoseconds.
        let (mut s, d) = pair((5, 0, 0), (5, 9));
        s.mtime = ns(100, 0);
        assert_eq!(after_head(&s, &d, Some(ns(100, 123)), SizeAndTime), Skip);
        s.mtime = ns(100, 5);
        assert_eq!(
            after_head(&s, &d, Some(ns(100, 6)), SizeAndTime),
            CompareContent
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
