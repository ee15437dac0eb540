//! `sync | copy REMOTE:A REMOTE:B`: bring one bucket (or prefix) to another, for
//! disaster-recovery copies and storage moves, on the same march as every other command: both
//! listings are the sides, and each key is one decision ([`decide`]); each copy is one
//! [`crate::transfer::relay`] (server-side on one endpoint, streamed and hashed across two).
//!
//! A rerun is cheap: an object whose size and ETag equal the source's is kept from the
//! listings alone (a copy in the source's part layout has the source's ETag). Where the ETags
//! cannot settle it (other layouts, a gateway's ETags) the mtimes both objects record decide,
//! one HEAD each. `sync` deletes objects only in the destination after every copy succeeded,
//! under the same rules as a sync from a directory ([`crate::march::plan::may_delete`]).

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::commands::delete::{Ending, delete_objects};
use crate::commands::drive::{Direction, Driven, LinkOrder, Next, Planned, Schedule, drive};
use crate::commands::schedule::{Cut, stopped};
use crate::commands::{Mode, RunOptions};
use crate::config::filter::Filter;
use crate::config::limits::Limits;
use crate::config::registry::{BlobSet, Kind};
use crate::march::list::{self, ListedObject};
use crate::march::plan::same_mtime;
use crate::march::{self, March, Marched, RemoteSide, Step};
use crate::read::Budget;
use crate::read::etag::ETag;
use crate::report::class::Class;
use crate::report::requests::RequestSnapshot;
use crate::report::{self, Stats};
use crate::s3::{S3Error, Store};
use crate::transfer::download;
use crate::transfer::multipart::Retry;
use crate::transfer::multipart::UploadError;
use crate::transfer::relay::{self, Expect, Proof, Relay};

/// How to run a bucket-to-bucket sync or copy.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    /// What every direction is told.
    pub run: RunOptions,
    pub size_only: bool,
    pub ignore_existing: bool,
    /// `--checksum`: objects whose ETags cannot be compared are copied, not judged by mtime.
    pub checksum: bool,
    /// Copy through us even on one endpoint (`--disable copy`, or two sets of credentials).
    pub server_side: bool,
    pub create_bucket: bool,
    pub location_constraint: Option<String>,
    pub retry: Retry,
}

/// What a bucket-to-bucket run did, for the exit code, the summary line and `--report`.
#[derive(Debug, Default, Serialize)]
pub struct MirrorSummary {
    pub objects_source: u64,
    pub objects_copied: u64,
    pub bytes_copied: u64,
    /// Copies the server made (CopyObject, UploadPartCopy), proven by equal ETags.
    pub server_side_copies: u64,
    /// Copies whose bytes passed through us, hashed.
    pub streamed_copies: u64,
    /// Copied, but the source's ETag is not an MD5 (or not in the copy's form): sizes only.
    pub source_not_comparable: u64,
    pub objects_unchanged: u64,
    /// Bytes of parts an interrupted copy had already sent, not sent again.
    pub bytes_resumed: u64,
    /// Deletions and limits: how the run ended.
    #[serde(flatten)]
    pub ending: Ending,
    pub dry_run: bool,
    pub elapsed_seconds: f64,
    pub requests_source: RequestSnapshot,
    pub requests: RequestSnapshot,
    #[serde(flatten)]
    pub failures: crate::report::class::Tally,
}

impl MirrorSummary {
    pub fn errors(&self) -> u64 {
        self.failures.count()
    }

    fn error(&mut self, class: crate::report::class::Class, message: String) {
        self.failures.add(class, message);
    }
}

/// What to do with one source object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Copy,
    Keep,
    /// Same size, ETags that cannot settle it: keep if both record the same mtime.
    CompareMtime,
}

/// The decision for a source object and the destination's object at its key, if any.
pub fn decide(src: &ListedObject, dst: Option<&ListedObject>, o: &MirrorOptions) -> Decision {
    let Some(dst) = dst else {
        return Decision::Copy;
    };
    if o.ignore_existing {
        return Decision::Keep;
    }
    if src.size != dst.size {
        return Decision::Copy;
    }
    if o.size_only {
        return Decision::Keep;
    }
    let (a, b) = (ETag::parse(&src.etag), ETag::parse(&dst.etag));
    if a == b && !matches!(a, ETag::Opaque(_)) {
        return Decision::Keep;
    }
    if o.checksum || matches!((&a, &b), (ETag::Md5(_), ETag::Md5(_))) {
        // Two MD5s that differ are two contents.
        return Decision::Copy;
    }
    Decision::CompareMtime
}

enum Done {
    Copied(u64, Proof),
    Unchanged,
}

/// Copy everything under `src`'s prefix to `dst`'s.
pub async fn run(
    src: Arc<Store>,
    dst: Arc<Store>,
    filter: Filter,
    limits: Limits,
    opts: MirrorOptions,
) -> Result<MirrorSummary, S3Error> {
    let src_listing = list::start(&src, &filter, limits.checkers).await?;
    let dst_filter = opts.run.destination_filter(&filter);
    let dst_listing = super::list_destination(
        &dst,
        &dst_filter,
        limits.checkers,
        opts.create_bucket,
        opts.run.dry_run,
        opts.location_constraint.as_deref(),
    )
    .await?;
    let stats = Stats::of_run(dst.requests.clone());
    let known_blobs: Arc<Mutex<BlobSet>> = Default::default();
    let relay = Relay {
        src: src.clone(),
        dst: dst.clone(),
        server_side: opts.server_side,
        budget: Budget::new(limits.buffer_memory).watched_by(&stats),
        limits: limits.clone(),
        stats: stats.clone(),
        retry: opts.retry,
        pending: Default::default(),
        registry: opts
            .run
            .registry
            .clone()
            .map(|layout| (layout, known_blobs.clone())),
        copy_keeps_parts: Default::default(),
    };
    tracing::info!(
        "{}",
        if opts.server_side {
            "one endpoint, one set of credentials: the server copies (CopyObject, UploadPartCopy)"
        } else {
            "two endpoints (or two sets of credentials): objects are streamed through, every part hashed"
        }
    );
    let progress = opts.run.progress(&stats);
    let mut march = March::new(
        RemoteSide::new(src_listing),
        RemoteSide::new(dst_listing),
        opts.run.registry.clone().map(|layout| march::Registry {
            layout,
            include_uploads: opts.run.include_uploads,
            dst_blobs: known_blobs.clone(),
        }),
    );
    let schedule = Schedule {
        slots: limits.transfers,
        compare_slots: 1,
        ahead: 0,
        links: if opts.run.registry.is_some() {
            LinkOrder::AfterEveryBlob
        } else {
            LinkOrder::Any
        },
        cutoff: opts.run.cutoff.clone(),
        stats: stats.clone(),
    };
    let mut mirror = Mirror {
        summary: MirrorSummary {
            dry_run: opts.run.dry_run,
            ..MirrorSummary::default()
        },
        relay,
        known_blobs,
        deletes: Vec::new(),
        opts,
    };
    let Driven { failed, cut } = drive(&mut march, &mut mirror, schedule).await;
    let Mirror {
        summary,
        deletes,
        opts,
        ..
    } = mirror;
    if let Some(c) = cut {
        stopped(c, &opts.run.cutoff);
    }
    if let Some(p) = progress {
        p.finish().await;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    end(summary, deletes, cut, &opts, &src, &dst, &limits, &stats).await
}

/// The end of a bucket-to-bucket run: the cutoff, the deletion tail, and the summary line.
#[allow(clippy::too_many_arguments)]
async fn end(
    mut summary: MirrorSummary,
    deletes: Vec<String>,
    cut: Option<Cut>,
    opts: &MirrorOptions,
    src: &Store,
    dst: &Arc<Store>,
    limits: &Limits,
    stats: &Stats,
) -> Result<MirrorSummary, S3Error> {
    summary.ending.deletes_planned = deletes.len() as u64;
    let src_name = format!("bucket {}", src.shown(&src.path.prefix));
    if let Some(c) = cut {
        summary.ending.cut(c, deletes.len());
    } else if opts.run.dry_run {
        for d in &deletes {
            tracing::warn!("{d}: Skipped delete as --dry-run is set");
        }
    } else {
        let (errors, sources, planned) = (summary.errors(), summary.objects_source, deletes.len());
        match summary.ending.allow(
            errors,
            sources,
            planned,
            opts.run.max_delete,
            &src_name,
            "objects",
        ) {
            Ok(()) if !deletes.is_empty() => {
                for (rel, r) in delete_objects(dst, limits.checkers, deletes, stats).await {
                    match r {
                        Ok(()) => summary.ending.deleted += 1,
                        Err(e) => summary.error(e.class(), format!("{rel}: Failed to delete: {e}")),
                    }
                }
            }
            Ok(()) => {}
            Err(Some(message)) => summary.error(Class::Permanent, message),
            Err(None) => {}
        }
    }
    summary.elapsed_seconds = stats.started.elapsed().as_secs_f64();
    summary.bytes_resumed = stats
        .bytes_reused
        .load(std::sync::atomic::Ordering::Relaxed);
    summary.requests = dst.requests.snapshot();
    summary.requests_source = src.requests.snapshot();
    let line = format!(
        "{} | copied {} objects ({}; {} by the server), {} unchanged, {} deleted, {} errors",
        stats.line(),
        summary.objects_copied,
        report::bytes(summary.bytes_copied),
        summary.server_side_copies,
        summary.objects_unchanged,
        summary.ending.deleted,
        summary.errors()
    );
    tracing::warn!("{line}");
    report::termination::set_outcome(line);
    Ok(summary)
}

/// A bucket-to-bucket run while it runs: the direction bucket → bucket of the one driver.
struct Mirror {
    summary: MirrorSummary,
    relay: Relay,
    /// Registry mode: blobs the destination holds (listed, or copied by this run).
    known_blobs: Arc<Mutex<BlobSet>>,
    /// Keys only the destination has (`sync`): deleted at the end if all went well.
    deletes: Vec<String>,
    opts: MirrorOptions,
}

/// One object to copy, and what is known of it.
struct CopyItem {
    obj: ListedObject,
    decision: Decision,
    /// The destination's object at its key, if there is one.
    there: Option<ListedObject>,
    expect: Expect,
}

impl Planned for CopyItem {
    fn rel(&self) -> &str {
        &self.obj.rel
    }
    fn size(&self) -> u64 {
        self.obj.size
    }
}

impl Direction for Mirror {
    type Src = ListedObject;
    type Dst = ListedObject;
    type Item = CopyItem;
    // A copy compares inside its transfer (one HEAD of each side, then the copy if it must).
    type Compare = std::future::Ready<()>;
    type Compared = ();
    type Done = Copied;

    async fn step(
        &mut self,
        marched: Marched<ListedObject, ListedObject>,
    ) -> Result<Next<CopyItem, Self::Compare>, S3Error> {
        let Marched { step, kind } = marched;
        let (summary, opts) = (&mut self.summary, &self.opts);
        let is_link = matches!(kind, Some(Kind::Link { .. }));
        let (obj, there) = match step {
            Step::SrcOnly(o) => (o, None),
            Step::Both(o, d) => (o, Some(d)),
            Step::DstOnly(d) => {
                if opts.run.mode == Mode::Sync {
                    self.deletes.push(d.rel);
                }
                return Ok(Next::Nothing);
            }
            Step::Error(e) => {
                summary.error(Class::Permanent, e.to_string());
                return Ok(Next::Nothing);
            }
        };
        summary.objects_source += 1;
        let decision = decide(&obj, there.as_ref(), opts);
        if decision == Decision::Keep {
            summary.objects_unchanged += 1;
            return Ok(Next::Nothing);
        }
        let stats = &self.relay.stats;
        Stats::add(&stats.files_total, 1);
        Stats::add(&stats.bytes_total, obj.size);
        if opts.run.dry_run {
            tracing::warn!("{}: would copy (dry run)", obj.rel);
            return Ok(Next::Nothing);
        }
        if is_link && summary.errors() > 0 {
            summary.error(
                Class::Temporary,
                format!(
                    "{}: link not copied: {} errors before it (a blob it needs may be missing); rerun",
                    obj.rel,
                    summary.errors()
                ),
            );
            return Ok(Next::Nothing);
        }
        let expect = match kind {
            Some(Kind::Blob { digest }) => Expect::Blob(digest),
            Some(Kind::Link { path_digest }) => Expect::Link(path_digest),
            _ => Expect::Nothing,
        };
        Ok(Next::Send(CopyItem {
            obj,
            decision,
            there,
            expect,
        }))
    }

    fn send(&self, item: CopyItem) -> impl Future<Output = Copied> + Send + 'static {
        let (r, known) = (self.relay.clone(), self.known_blobs.clone());
        async move {
            let CopyItem {
                obj,
                decision,
                there,
                expect,
            } = item;
            let out = copy_one(&r, &obj, decision, there.as_ref(), &expect).await;
            if let (Ok(_), Expect::Blob(d)) = (&out, expect) {
                known.lock().expect("known blobs").insert(&d);
            }
            (obj.rel, out)
        }
    }

    fn record(&mut self, copied: Copied) -> bool {
        let ok = copied.1.is_ok();
        record(&mut self.summary, &self.relay.stats, copied);
        ok
    }
}

async fn copy_one(
    r: &Relay,
    obj: &ListedObject,
    decision: Decision,
    there: Option<&ListedObject>,
    expect: &Expect,
) -> Result<Done, UploadError> {
    if decision == Decision::CompareMtime
        && let Some(there) = there
    {
        let (a, b) = futures::try_join!(r.src.head(&obj.rel, None), r.dst.head(&there.rel, None))?;
        let (ma, mb) = (
            download::object_mtime([&a], obj.last_modified),
            download::object_mtime([&b], there.last_modified),
        );
        if same_mtime(ma, mb) {
            Stats::add(&r.stats.bytes_done, obj.size);
            return Ok(Done::Unchanged);
        }
    }
    let proof = relay::relay(r, obj, expect).await?;
    Ok(Done::Copied(obj.size, proof))
}

/// A copy's outcome: the key, and what became of it.
type Copied = (String, Result<Done, UploadError>);

fn record(summary: &mut MirrorSummary, stats: &Stats, copied: Copied) {
    match copied {
        (_, Ok(Done::Unchanged)) => {
            summary.objects_unchanged += 1;
            Stats::add(&stats.files_done, 1);
        }
        (rel, Ok(Done::Copied(bytes, proof))) => {
            summary.objects_copied += 1;
            summary.bytes_copied += bytes;
            Stats::add(&stats.files_done, 1);
            match proof {
                Proof::ServerCopy => summary.server_side_copies += 1,
                Proof::Streamed => summary.streamed_copies += 1,
                Proof::SourceNotComparable => {
                    summary.source_not_comparable += 1;
                    tracing::warn!(
                        "{rel}: copied, but the source's ETag cannot be compared with the copy's: sizes only"
                    );
                }
            }
            tracing::info!("{rel}: Copied ({proof:?})");
        }
        (_, Err(e)) => {
            Stats::add(&stats.errors, 1);
            summary.error(e.class(), e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::schedule::Cutoff;
    use crate::report::ProgressMode;
    use std::time::Duration;
    use std::time::SystemTime;

    fn obj(size: u64, etag: &str) -> ListedObject {
        ListedObject {
            rel: "a".into(),
            size,
            etag: etag.into(),
            last_modified: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn decisions() {
        let plain = MirrorOptions {
            run: RunOptions {
                mode: Mode::Copy,
                dry_run: false,
                delete_excluded: false,
                max_delete: None,
                cutoff: Cutoff::default(),
                progress: ProgressMode::Off,
                stats_interval: Duration::ZERO,
                registry: None,
                include_uploads: false,
            },
            size_only: false,
            ignore_existing: false,
            checksum: false,
            server_side: true,
            create_bucket: false,
            location_constraint: None,
            retry: Retry::default(),
        };
        let size_only = MirrorOptions {
            size_only: true,
            ..plain.clone()
        };
        let existing = MirrorOptions {
            ignore_existing: true,
            ..plain.clone()
        };
        let checksum = MirrorOptions {
            checksum: true,
            ..plain.clone()
        };
        let md5a = "\"0123456789abcdef0123456789abcdef\"";
        let md5b = "\"fedcba9876543210fedcba9876543210\"";
        let multi = "\"0123456789abcdef0123456789abcdef-3\"";
        let table = [
            (&plain, (4, md5a), None, Decision::Copy),
            (&plain, (4, md5a), Some((4, md5a)), Decision::Keep),
            (&plain, (4, md5a), Some((5, md5a)), Decision::Copy),
            (&plain, (4, md5a), Some((4, md5b)), Decision::Copy),
            (&plain, (4, multi), Some((4, multi)), Decision::Keep),
            (&plain, (4, multi), Some((4, md5a)), Decision::CompareMtime),
            (
                &plain,
                (4, "opaque"),
                Some((4, "opaque")),
                Decision::CompareMtime,
            ),
            (&checksum, (4, multi), Some((4, md5a)), Decision::Copy),
            (&checksum, (4, md5a), Some((4, md5a)), Decision::Keep),
            (&size_only, (4, md5a), Some((4, md5b)), Decision::Keep),
            (&size_only, (4, md5a), Some((5, md5a)), Decision::Copy),
            (&existing, (4, md5a), Some((5, md5b)), Decision::Keep),
            (&existing, (4, md5a), None, Decision::Copy),
        ];
        for (opts, (size, etag), there, want) in table {
            let there = there.map(|(s, e)| obj(s, e));
            assert_eq!(
                decide(&obj(size, etag), there.as_ref(), opts),
                want,
                "{etag} {there:?}"
            );
        }
    }
}
