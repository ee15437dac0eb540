//! `sync` and `copy` from a directory to a bucket: walk → list → plan → read → upload →
//! (sync only) delete, as one direction of the driver ([`super::drive`]): this module
//! decides each key ([`plan::decide`], with a HEAD or a hash where the listing cannot settle
//! it) and uploads one file ([`upload::upload`]).
//!
//! One file's failure never stops the others; it is counted, logged and reflected in the exit
//! code. Deletes happen only in `sync`, only after every transfer succeeded, and only within
//! `--max-delete`; otherwise nothing is deleted.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::commands::delete::{Ending, delete_objects};
use crate::commands::drive::{Direction, Driven, LinkOrder, Next, Planned, Schedule, drive};
use crate::commands::schedule::Cut;
use crate::commands::{Mode, RunOptions};
use crate::config::filter::Filter;
use crate::config::limits::Limits;
use crate::config::registry::{BlobSet, Kind};
use crate::march::list::ListedObject;
use crate::march::plan::{self, Decision, Pair, Reason, SkipRule};
use crate::march::walk::{self, LocalFile};
use crate::march::{self, LocalSide, March, Marched, RemoteSide, Step};
use crate::read::{Budget, IoEngine};
use crate::report::class::ERRORS_KEPT;
use crate::report::requests::RequestSnapshot;
use crate::report::{self, Stats};
use crate::s3::{S3Error, Store};
use crate::transfer::upload::{self, Proof, RegistryCtx, UploadCtx};
use crate::transfer::verify::{self, Verdict, VerifyOptions};

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// What every direction is told.
    pub run: RunOptions,
    pub skip_rule: SkipRule,
    /// A file whose mtime changed but not its content gives its mtime to its object (rclone's
    /// default; off with `--no-update-modtime`).
    pub update_modtime: bool,
    pub copy_links: bool,
    pub create_bucket: bool,
    pub location_constraint: Option<String>,
    pub integrity_retries: u32,
    /// Pause before each integrity retry (`--retries-sleep`).
    pub retries_sleep: Duration,
    /// The engine that reads the source, and why it was chosen.
    pub io: (Arc<IoEngine>, String),
}

/// What a sync did, for the exit code, the summary line and `--report`.
#[derive(Debug, Default, Serialize)]
pub struct SyncSummary {
    pub files_source: u64,
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
    pub bytes_reused: u64,
    pub files_resumed: u64,
    pub files_skipped: u64,
    /// Skipped files whose object needed a HEAD to show it unchanged (a file touched since
    /// its upload: its ctime is newer), and of those, the objects given the file's mtime
    /// again by a server-side copy onto themselves, so that the next run skips them from
    /// the listing alone.
    pub files_checked_by_head: u64,
    pub objects_refreshed: u64,
    /// How each upload was proven: by its ETag (the MD5 or composite of what we sent), by the
    /// S3 checksum the server stored (where the ETag is not an MD5), or not at all
    /// (`hash_not_comparable`: `check` downloads these to prove them).
    pub proven_by_etag: u64,
    pub proven_by_checksum: u64,
    pub hash_not_comparable: u64,
    /// Files or parts sent again after an integrity failure.
    pub retries: u64,
    pub errors_temporary: u64,
    pub errors_permanent: u64,
    /// Registry mode: in-progress upload files left out (`_uploads`), and their bytes.
    /// The I/O engine that read the source (`io_uring`, `pread`; empty if nothing was read)
    /// and why it was chosen.
    pub io_engine: &'static str,
    pub io_engine_reason: String,
    pub registry_uploads_skipped: u64,
    pub registry_uploads_skipped_bytes: u64,
    /// Incomplete multipart uploads of this run's files aborted at the end (left by an
    /// interrupted run, or a duplicate lost to a retried request).
    pub leftover_uploads_aborted: u64,
    /// Deletions and limits: how the run ended.
    #[serde(flatten)]
    pub ending: Ending,
    pub dry_run: bool,
    pub elapsed_seconds: f64,
    pub requests: RequestSnapshot,
    /// The first [`ERRORS_KEPT`] error messages (every one is logged); `errors_not_kept` counts
    /// the rest.
    pub errors: Vec<String>,
    pub errors_not_kept: u64,
}

impl SyncSummary {
    pub fn errors(&self) -> u64 {
        self.errors_temporary + self.errors_permanent
    }
    fn error(&mut self, temporary: bool, message: String) {
        tracing::error!("{message}");
        if temporary {
            self.errors_temporary += 1;
        } else {
            self.errors_permanent += 1;
        }
        if self.errors.len() < ERRORS_KEPT {
            self.errors.push(message);
        } else {
            self.errors_not_kept += 1;
        }
    }
}

/// Files queued ahead of the uploads (waiting links included). The merge pauses when this
/// many are queued, so a tree of any size plans in the same memory; it is far more than the
/// transfers in flight, so the uploads never wait for the plan.
const QUEUED_AHEAD: usize = 16_384;

/// Run `sync` or `copy` from `root` to `store`.
pub async fn run(
    store: Arc<Store>,
    root: PathBuf,
    filter: Filter,
    limits: Limits,
    opts: SyncOptions,
) -> Result<SyncSummary, S3Error> {
    let stats = Stats::of_run(store.requests.clone());

    // Walk and list at the same time, and merge both as they come.
    let walked = walk::spawn(
        root.clone(),
        store.path.prefix.clone(),
        filter.clone(),
        opts.copy_links,
        limits.walk_threads,
    );
    let listed_by = opts.run.destination_filter(&filter);
    let listing = super::list_destination(
        &store,
        &listed_by,
        limits.checkers,
        opts.create_bucket,
        opts.run.dry_run,
        opts.location_constraint.as_deref(),
    )
    .await?;
    let mut run = Run::new(&store, &limits, stats.clone(), opts);
    let progress = run.opts.run.progress(&stats);
    let mut march = March::new(
        LocalSide::new(walked),
        RemoteSide::new(listing),
        run.opts.run.registry.clone().map(|layout| march::Registry {
            layout,
            include_uploads: run.opts.run.include_uploads,
            dst_blobs: run.known_blobs.clone(),
        }),
    );
    let schedule = run.schedule(&limits, stats.clone());
    let Driven { failed, cut } = drive(&mut march, &mut run, schedule).await;
    run.summary.registry_uploads_skipped = march.uploads_skipped;
    run.summary.registry_uploads_skipped_bytes = march.uploads_skipped_bytes;
    if let Some(p) = progress {
        p.finish().await;
    }
    end(run, failed, cut, &store, &root, &filter, &limits, &stats).await
}

/// The end of a sync: the listing's error, if it failed; else the cutoff, the deletion tail,
/// the leftover uploads of a run without errors, and the summary line.
#[allow(clippy::too_many_arguments)]
async fn end(
    run: Run,
    failed: Option<S3Error>,
    cut: Option<Cut>,
    store: &Arc<Store>,
    root: &std::path::Path,
    filter: &Filter,
    limits: &Limits,
    stats: &Arc<Stats>,
) -> Result<SyncSummary, S3Error> {
    let Run {
        mut summary,
        deletes,
        opts,
        ..
    } = run;
    let src_name = format!("Local file system at {}", root.display());
    if summary.registry_uploads_skipped > 0 {
        tracing::warn!(
            "registry mode: skipped {} files ({}) of in-progress uploads (_uploads); --registry-uploads includes them",
            summary.registry_uploads_skipped,
            report::bytes(summary.registry_uploads_skipped_bytes)
        );
    }
    if summary.files_uploaded > 0 {
        tracing::info!(
            "uploads proven: {} by ETag, {} by checksum, {} not comparable",
            summary.proven_by_etag,
            summary.proven_by_checksum,
            summary.hash_not_comparable
        );
    }
    if let Some(e) = failed {
        return Err(e);
    }
    summary.ending.deletes_planned = deletes.len() as u64;
    if let Some(cut) = cut {
        let why = cut.flag();
        tracing::warn!(
            "{src_name}: stopped at {why} ({:?} cutoff); nothing deleted: run again to go on",
            opts.run.cutoff.mode
        );
        summary.ending.cut(cut, deletes.len());
    }

    if opts.run.dry_run {
        for d in &deletes {
            tracing::warn!(
                "{}: Skipped delete as --dry-run is set (size {})",
                d.rel,
                d.size
            );
        }
        summary.requests = store.requests.snapshot();
        summary.elapsed_seconds = stats.started.elapsed().as_secs_f64();
        return Ok(summary);
    }

    if !deletes.is_empty() && cut.is_none() {
        let errors = summary.errors();
        let (sources, planned) = (summary.files_source, deletes.len());
        match summary.ending.allow(
            errors,
            sources,
            planned,
            opts.run.max_delete,
            &src_name,
            "files",
        ) {
            Ok(()) => delete_all(store, limits, deletes, stats, &mut summary).await,
            Err(Some(message)) => summary.error(false, message),
            Err(None) => {}
        }
    }
    if summary.errors() == 0 && cut.is_none() {
        abort_leftovers(store, root, filter, &opts, &mut summary).await;
    }
    summary.elapsed_seconds = stats.started.elapsed().as_secs_f64();
    summary.bytes_reused = stats
        .bytes_reused
        .load(std::sync::atomic::Ordering::Relaxed);
    summary.retries = stats.retries.load(std::sync::atomic::Ordering::Relaxed);
    summary.requests = store.requests.snapshot();
    let line = format!(
        "{} | uploaded {} files ({}), {} reused from interrupted uploads, {} unchanged, {} deleted, {} errors",
        stats.line(),
        summary.files_uploaded,
        report::bytes(summary.bytes_uploaded),
        report::bytes(summary.bytes_reused),
        summary.files_skipped,
        summary.ending.deleted,
        summary.errors()
    );
    tracing::warn!("{line}");
    report::termination::set_outcome(line);
    Ok(summary)
}

/// A sync while it plans and uploads.
struct Run {
    summary: SyncSummary,
    /// Objects only in the destination (`sync` only): deleted at the end if all went well.
    deletes: Vec<ListedObject>,
    ctx: Arc<UploadCtx>,
    /// Registry mode: blobs the bucket holds (listed, or uploaded by this run).
    known_blobs: Arc<std::sync::Mutex<BlobSet>>,
    opts: SyncOptions,
}

type Compared = (LocalFile, Settled);

/// What a comparison that needed requests found.
#[derive(Debug)]
enum Settled {
    /// Nothing to send: the same mtime, or the same content (`mtime_set`: the object was
    /// given the file's mtime). `headed`: a HEAD read the recorded mtime.
    Same {
        headed: bool,
        mtime_set: bool,
    },
    Send(Reason),
    Error(String),
}

/// One file to upload, and why.
struct Upload {
    file: LocalFile,
    reason: Reason,
}

impl Planned for Upload {
    fn rel(&self) -> &str {
        &self.file.rel
    }
    fn size(&self) -> u64 {
        self.file.size
    }
}

/// An upload's outcome.
struct Sent {
    rel: String,
    size: u64,
    /// Why it was sent.
    reason: Reason,
    result: Result<upload::Uploaded, upload::UploadError>,
}

impl Direction for Run {
    type Src = LocalFile;
    type Dst = ListedObject;
    type Item = Upload;
    type Compare = BoxFuture<'static, Compared>;
    type Compared = Compared;
    type Done = Sent;

    /// Decide what one step of the march needs.
    async fn step(
        &mut self,
        marched: Marched<LocalFile, ListedObject>,
    ) -> Result<Next<Upload, Self::Compare>, S3Error> {
        let step = marched.step;
        let Some(pair) = Pair::of(&step) else {
            if let Step::Error(e) = step {
                self.summary.error(false, e.to_string());
            }
            return Ok(Next::Nothing);
        };
        if matches!(pair, Pair::SrcOnly(_) | Pair::Both(..)) {
            self.summary.files_source += 1;
        }
        let decision = plan::decide(&pair, self.opts.skip_rule);
        Ok(match (decision, step) {
            (Decision::Upload(r), Step::SrcOnly(s) | Step::Both(s, _)) => {
                self.plan_upload(s, r).await?
            }
            (Decision::CompareContent, Step::Both(s, d)) => {
                // --checksum: hash the file, upload it if its content differs.
                let ctx = self.ctx.clone();
                Next::Compare(Box::pin(async move {
                    let v = compare_content(&ctx, &s, &d, None).await;
                    (s, v)
                }))
            }
            (Decision::ReadMtime, Step::Both(s, d)) => {
                // Touched since its upload: the object's recorded mtime, then the content.
                let (ctx, rule) = (self.ctx.clone(), self.opts.skip_rule);
                let set = self.opts.update_modtime && !self.opts.run.dry_run;
                Next::Compare(Box::pin(async move {
                    let v = read_mtime(&ctx, &s, &d, rule, set).await;
                    (s, v)
                }))
            }
            (Decision::Skip, Step::Both(..)) => {
                self.summary.files_skipped += 1;
                Next::Nothing
            }
            (Decision::Delete, Step::DstOnly(d)) => {
                if self.opts.run.mode == Mode::Sync {
                    self.deletes.push(d);
                }
                Next::Nothing
            }
            (d, step) => unreachable!("decision {d:?} for {step:?}"),
        })
    }

    async fn compared(&mut self, (s, v): Compared) -> Result<Option<Upload>, S3Error> {
        match v {
            Settled::Same { headed, mtime_set } => {
                self.summary.files_skipped += 1;
                self.summary.files_checked_by_head += u64::from(headed);
                self.summary.objects_refreshed += u64::from(mtime_set);
                Ok(None)
            }
            Settled::Error(e) => {
                self.summary.error(true, format!("{}: {e}", s.rel));
                Ok(None)
            }
            Settled::Send(reason) => Ok(match self.plan_upload(s, reason).await? {
                Next::Send(u) => Some(u),
                _ => None,
            }),
        }
    }

    fn send(&self, item: Upload) -> impl Future<Output = Sent> + Send + 'static {
        let ctx = self.ctx.clone();
        async move {
            let _flight = ctx.stats.start_one();
            let Upload { file, reason } = item;
            let (size, rel) = (file.size, file.rel.clone());
            let result = upload::upload(ctx.clone(), file).await;
            Sent {
                rel,
                size,
                reason,
                result,
            }
        }
    }

    /// Record a finished upload; a blob's waiting links become ready.
    fn record(&mut self, sent: Sent) -> bool {
        let rel = sent.rel.clone();
        let ok = record(sent, &self.ctx, &mut self.summary).is_some();
        if ok
            && let Some(layout) = &self.opts.run.registry
            && let Kind::Blob { digest } = layout.kind(&rel)
        {
            self.known_blobs
                .lock()
                .expect("known blobs")
                .insert(&digest);
        }
        ok
    }
}

impl Run {
    /// A sync about to start: what its uploads share, and its summary.
    fn new(store: &Arc<Store>, limits: &Limits, stats: Arc<Stats>, opts: SyncOptions) -> Run {
        let (io, why) = opts.io.clone();
        let known_blobs = Arc::new(std::sync::Mutex::new(BlobSet::default()));
        let ctx = Arc::new(UploadCtx {
            io,
            store: store.clone(),
            budget: Budget::new(limits.buffer_memory).watched_by(&stats),
            limits: limits.clone(),
            stats: stats.clone(),
            retry: crate::transfer::multipart::Retry {
                again: opts.integrity_retries,
                sleep: opts.retries_sleep,
            },
            pending: std::sync::OnceLock::new(),
            registry: opts.run.registry.clone().map(|layout| RegistryCtx {
                layout,
                known_blobs: known_blobs.clone(),
            }),
        });
        let mut run = Run {
            summary: SyncSummary {
                dry_run: opts.run.dry_run,
                ..Default::default()
            },
            deletes: Vec::new(),
            ctx,
            known_blobs,
            opts,
        };
        if !run.opts.run.dry_run {
            tracing::info!("reading with {}: {why}", run.ctx.io.name());
            run.summary.io_engine = run.ctx.io.name();
            run.summary.io_engine_reason = why;
        }
        run
    }

    /// How its uploads and comparisons are scheduled.
    fn schedule(&self, limits: &Limits, stats: Arc<Stats>) -> Schedule {
        let slots = limits.transfers.max(1);
        Schedule {
            slots,
            // Comparisons that hash files (--checksum) run --checkers at once; the rest mostly
            // wait on the server (a HEAD, and a copy onto itself after a volume was restored), so
            // they get as many slots as transfers do.
            compare_slots: if self.opts.skip_rule == SkipRule::Checksum {
                limits.checkers.max(1)
            } else {
                limits.checkers.max(slots)
            },
            ahead: QUEUED_AHEAD,
            links: match &self.opts.run.registry {
                Some(layout) => LinkOrder::AfterTheirBlob {
                    layout: layout.clone(),
                    known: self.known_blobs.clone(),
                },
                None => LinkOrder::Any,
            },
            cutoff: self.opts.run.cutoff.clone(),
            stats,
        }
    }

    /// Count a file to upload and plan it (or, with `--dry-run`, say so).
    async fn plan_upload(
        &mut self,
        s: LocalFile,
        reason: Reason,
    ) -> Result<Next<Upload, BoxFuture<'static, Compared>>, S3Error> {
        Stats::add(&self.ctx.stats.files_total, 1);
        Stats::add(&self.ctx.stats.bytes_total, s.size);
        if self.opts.run.dry_run {
            tracing::warn!(
                "{}: Skipped copy as --dry-run is set ({}, size {})",
                s.rel,
                reason.as_str(),
                s.size
            );
            return Ok(Next::Nothing);
        }
        if s.size > 0 && s.size >= self.ctx.limits.upload_cutoff && self.ctx.pending.get().is_none()
        {
            // The first multipart file: find interrupted uploads to resume, once.
            let pending = crate::transfer::upload::pending_uploads(&self.ctx.store).await?;
            let _ = self.ctx.pending.set(pending);
        }
        Ok(Next::Send(Upload { file: s, reason }))
    }
}

/// Whether `s` holds what its object `d` holds (`head`: what a HEAD of it said, if one was
/// made): the same content is nothing to send, another is an upload, and one that cannot be
/// proven (an encrypted object's ETag, an unknown part layout) is sent again rather than
/// trusted.
async fn compare_content(
    ctx: &UploadCtx,
    s: &LocalFile,
    d: &ListedObject,
    head: Option<crate::s3::Head>,
) -> Settled {
    let vopts = VerifyOptions {
        download: false,
        always_download: false,
        parallel_parts: ctx.limits.parts_per_file,
    };
    let verdict = match head {
        Some(h) => verify::verify_headed(&ctx.store, s, d, vopts, h).await,
        None => verify::verify(&ctx.store, s, d, vopts, None).await,
    };
    match verdict {
        Verdict::Match(_) => Settled::Same {
            headed: false,
            mtime_set: false,
        },
        Verdict::Error(e) => Settled::Error(e),
        _ => Settled::Send(Reason::ContentDiffers),
    }
}

/// A file touched since its object was written ([`Decision::ReadMtime`]): read the mtime the
/// object records, and decide as rclone does ([`plan::after_head`]). When the file turns out
/// unchanged (the same mtime, or the same content), its object is given the file's mtime with
/// a server-side copy onto itself (when `set`; pinned to the listed ETag), which also makes it
/// newer than the file's ctime: the next run skips it from the listing alone, with no request.
async fn read_mtime(
    ctx: &UploadCtx,
    s: &LocalFile,
    d: &ListedObject,
    rule: SkipRule,
    set: bool,
) -> Settled {
    let head = match ctx.store.head(&s.rel, None).await {
        Ok(h) => h,
        Err(e) => return Settled::Error(e.to_string()),
    };
    let recorded = crate::s3::recorded_mtime(&head.metadata).and_then(crate::s3::parse_mtime);
    let same_mtime = recorded.is_some_and(|r| plan::same_mtime(r, s.mtime));
    let unchanged = match plan::after_head(s, d, recorded, rule) {
        // Kept: the same mtime, or (--update) an object newer than the file, which keeps its own.
        Decision::Skip => same_mtime,
        Decision::Upload(r) => return Settled::Send(r),
        Decision::CompareContent => match compare_content(ctx, s, d, Some(head.clone())).await {
            Settled::Same { .. } => true,
            Settled::Send(_) => return Settled::Send(Reason::MtimeDiffers),
            e => return e,
        },
        d => unreachable!("after a HEAD: {d:?}"),
    };
    let mut settled = Settled::Same {
        headed: true,
        mtime_set: false,
    };
    if !(unchanged && set) {
        return settled;
    }
    match ctx
        .store
        .set_mtime(&s.rel, &head, &d.etag, s.mtime, s.size)
        .await
    {
        Ok(_) => {
            if !same_mtime {
                tracing::info!("{}: Updated modification time in destination", s.rel);
            }
            settled = Settled::Same {
                headed: true,
                mtime_set: true,
            };
        }
        Err(e) => tracing::warn!(
            "{}: unchanged, but its object could not be given the file's mtime ({e}): the next run compares it again",
            s.rel
        ),
    }
    settled
}

fn record(
    Sent {
        rel,
        size,
        reason,
        result,
    }: Sent,
    ctx: &UploadCtx,
    summary: &mut SyncSummary,
) -> Option<String> {
    match result {
        Ok(u) => {
            Stats::add(&ctx.stats.files_done, 1);
            summary.files_uploaded += 1;
            summary.bytes_uploaded += size - u.reused_bytes;
            if u.resumed {
                summary.files_resumed += 1;
            }
            match u.proof {
                Proof::NotComparable => {
                    summary.hash_not_comparable += 1;
                    Stats::add(&ctx.stats.proofs.not_comparable, 1);
                    tracing::info!(
                        "{rel}: Copied ({}); ETag is not an MD5 and no checksum proves it, `check` will download to verify",
                        reason.as_str()
                    );
                }
                Proof::Checksum => {
                    summary.proven_by_checksum += 1;
                    Stats::add(&ctx.stats.proofs.checksum, 1);
                    tracing::info!("{rel}: Copied ({}); proven by checksum", reason.as_str());
                }
                Proof::Verified => {
                    summary.proven_by_etag += 1;
                    Stats::add(&ctx.stats.proofs.etag, 1);
                    tracing::info!("{rel}: Copied ({})", reason.as_str());
                }
            }
            Some(rel)
        }
        Err(e) => {
            Stats::add(&ctx.stats.errors, 1);
            let temporary = e.is_temporary();
            summary.error(temporary, format!("{rel}: Failed to copy: {e}"));
            None
        }
    }
}

/// After a run without errors: abort every incomplete multipart upload of a file this run
/// covered (its key is under the prefix, passes the filters and shard, and the source has the
/// file), so that nothing keeps paying for parts once the run says it is done. Uploads of
/// keys the run did not cover (another shard's, or with no source file) are left alone. On a
/// server that cannot list uploads there is nothing to find.
async fn abort_leftovers(
    store: &Store,
    root: &std::path::Path,
    filter: &Filter,
    opts: &SyncOptions,
    summary: &mut SyncSummary,
) {
    let uploads = match store.list_uploads(&store.path.prefix).await {
        Ok(u) => u,
        Err(S3Error::NotImplemented { .. }) => return,
        Err(e @ S3Error::AccessDenied { .. }) => {
            // Keys that may write but not list uploads: there is nothing we are allowed to see.
            tracing::warn!("cannot look for leftover incomplete uploads: {e}");
            return;
        }
        Err(e) => {
            summary.error(
                e.is_temporary(),
                format!("cannot list incomplete uploads to clean up: {e}"),
            );
            return;
        }
    };
    for u in uploads {
        let Some(rel) = u.key.strip_prefix(&store.path.prefix) else {
            continue;
        };
        let covered =
            filter.allows(rel)
                && opts.run.registry.as_ref().is_none_or(|l| {
                    opts.run.include_uploads || !matches!(l.kind(rel), Kind::Upload)
                })
                && {
                    let path = root.join(rel);
                    let meta = if opts.copy_links {
                        std::fs::metadata(&path)
                    } else {
                        std::fs::symlink_metadata(&path)
                    };
                    meta.is_ok_and(|m| m.is_file())
                };
        if !covered {
            continue;
        }
        match store.abort_multipart(&u.key, &u.upload_id).await {
            Ok(()) => {
                summary.leftover_uploads_aborted += 1;
                tracing::info!("{rel}: aborted a leftover incomplete upload");
            }
            Err(e) => summary.error(
                e.is_temporary(),
                format!("{rel}: cannot abort a leftover incomplete upload: {e}"),
            ),
        }
    }
}

async fn delete_all(
    store: &Arc<Store>,
    limits: &Limits,
    deletes: Vec<ListedObject>,
    stats: &Arc<Stats>,
    summary: &mut SyncSummary,
) {
    let rels = deletes.into_iter().map(|d| d.rel).collect();
    for (rel, r) in delete_objects(store, limits.checkers, rels, stats).await {
        match r {
            Ok(()) => summary.ending.deleted += 1,
            Err(e) => {
                let t = e.is_temporary();
                summary.error(t, format!("{rel}: Failed to delete: {e}"));
            }
        }
    }
}
