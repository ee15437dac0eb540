//! The `sync` and `copy` commands: walk → list → plan → read → upload → (sync only) delete.
//!
//! One file's failure never stops the others; it is counted, logged and reflected in the exit
//! code. Deletes happen only in `sync`, only after every transfer succeeded, and only within
//! `--max-delete`; otherwise nothing is deleted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::filter::Filter;
use crate::limits::Limits;
use crate::list;
use crate::plan::{self, Reason, SkipRule};
use crate::read::{Budget, IoEngine};
use crate::registry::{Kind, Layout};
use crate::report::{self, Progress, ProgressMode, Stats};
use crate::s3::{RequestSnapshot, S3Error, Store, UploadInfo};
use crate::upload::{self, Proof, RegistryCtx, UploadCtx};
use crate::verify::{self, Verdict, VerifyOptions};
use crate::walk::{self, SrcEntry};

/// `sync` deletes extraneous objects; `copy` never deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sync,
    Copy,
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub mode: Mode,
    pub dry_run: bool,
    pub skip_rule: SkipRule,
    pub max_delete: Option<u64>,
    pub copy_links: bool,
    pub create_bucket: bool,
    pub location_constraint: Option<String>,
    pub integrity_retries: u32,
    pub progress: ProgressMode,
    pub stats_interval: Duration,
    /// Registry mode (the source is a distribution storage tree), if on.
    pub registry: Option<Layout>,
    /// Registry mode: also sync the driver's `_uploads` state.
    pub include_uploads: bool,
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
    pub hash_not_comparable: u64,
    /// Files or parts sent again after an integrity failure.
    pub retries: u64,
    pub deleted: u64,
    pub deletes_planned: u64,
    pub errors_temporary: u64,
    pub errors_permanent: u64,
    /// Registry mode: in-progress upload files left out (`_uploads`), and their bytes.
    /// The I/O engine that read the source (`io_uring`, `pread`; empty if nothing was read)
    /// and why it was chosen.
    pub io_engine: &'static str,
    pub io_engine_reason: String,
    pub registry_uploads_skipped: u64,
    pub registry_uploads_skipped_bytes: u64,
    /// Deletes were needed but not done (errors, or over `--max-delete`).
    pub deletes_refused: bool,
    pub max_delete_exceeded: bool,
    pub dry_run: bool,
    pub elapsed_seconds: f64,
    pub requests: RequestSnapshot,
    pub errors: Vec<String>,
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
        self.errors.push(message);
    }
}

/// In-progress multipart uploads under the prefix, by key; empty where the server cannot list them.
async fn pending_uploads(store: &Store) -> Result<HashMap<String, Vec<UploadInfo>>, S3Error> {
    let mut map: HashMap<String, Vec<UploadInfo>> = HashMap::new();
    match store.list_uploads(&store.path.prefix).await {
        Ok(list) => {
            for u in list {
                map.entry(u.key.clone()).or_default().push(u);
            }
        }
        Err(S3Error::NotImplemented { .. }) => {
            tracing::info!(
                "server cannot list multipart uploads: interrupted uploads will restart"
            );
        }
        Err(e) => return Err(e),
    }
    Ok(map)
}

/// Run `sync` or `copy` from `root` to `store`.
pub async fn run(
    store: Arc<Store>,
    root: PathBuf,
    filter: Filter,
    limits: Limits,
    opts: SyncOptions,
) -> Result<SyncSummary, S3Error> {
    let stats = Arc::new(Stats::for_requests(store.requests.clone()));
    let mut summary = SyncSummary {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let src_name = format!("Local file system at {}", root.display());

    // Walk and list at the same time.
    let (walk_root, prefix, walk_filter) =
        (root.clone(), store.path.prefix.clone(), filter.clone());
    let (copy_links, threads) = (opts.copy_links, limits.walk_threads);
    let walking = tokio::task::spawn_blocking(move || {
        walk::walk(&walk_root, &prefix, &walk_filter, copy_links, threads)
    });
    let listed = match list::list(&store, &filter, limits.checkers).await {
        Err(S3Error::NoSuchBucket { .. }) if opts.create_bucket && !opts.dry_run => {
            store
                .create_bucket(opts.location_constraint.as_deref())
                .await?;
            tracing::warn!("created bucket {}", store.path.bucket);
            Vec::new()
        }
        other => other?,
    };
    let mut walked = walking.await.expect("walk task");
    let mut listed = listed;
    if let Some(layout) = &opts.registry
        && !opts.include_uploads
    {
        // The filesystem driver's in-progress uploads mean nothing to the S3 driver: leave them
        // out of the sync, and out of the deletes.
        let (count, bytes) = layout.leave_out_uploads(&mut walked.files, &mut listed);
        summary.registry_uploads_skipped = count;
        summary.registry_uploads_skipped_bytes = bytes;
        if summary.registry_uploads_skipped > 0 {
            tracing::warn!(
                "registry mode: skipped {} files ({}) of in-progress uploads (_uploads); --registry-uploads includes them",
                summary.registry_uploads_skipped,
                report::bytes(bytes)
            );
        }
    }
    let listed_blobs: HashSet<String> = match &opts.registry {
        Some(layout) => layout.blob_digests(listed.iter().map(|d| d.rel.as_str())),
        None => HashSet::new(),
    };
    for e in &walked.errors {
        summary.error(false, e.to_string());
    }
    for s in &walked.special {
        tracing::warn!("{s}: not a regular file (fifo, socket or device): skipped");
    }
    summary.files_source = walked.files.len() as u64;

    let mut plan = plan::plan(&walked.files, &listed, opts.skip_rule);
    summary.files_skipped = plan.skipped;
    drop(listed);

    // --checksum: hash files whose size matches and upload those whose content differs.
    if !plan.compares.is_empty() {
        let vopts = VerifyOptions {
            download: false,
            always_download: false,
            parallel_parts: limits.parts_per_file,
        };
        let sem = Arc::new(Semaphore::new(limits.checkers));
        let mut set = JoinSet::new();
        for (s, d) in std::mem::take(&mut plan.compares) {
            let (store, sem) = (store.clone(), sem.clone());
            set.spawn(async move {
                let _p = sem.acquire_owned().await;
                let v = verify::verify(&store, &s, &d, vopts, None).await;
                (s, v)
            });
        }
        while let Some(r) = set.join_next().await {
            let (s, v) = r.expect("compare task");
            match v {
                Verdict::Match => {
                    summary.files_skipped += 1;
                }
                Verdict::Error(e) => summary.error(true, format!("{}: {e}", s.rel)),
                _ => plan.uploads.push((s, Reason::ContentDiffers)),
            }
        }
        plan.uploads.sort_by(|a, b| a.0.rel.cmp(&b.0.rel));
    }

    summary.deletes_planned = if opts.mode == Mode::Sync {
        plan.deletes.len() as u64
    } else {
        0
    };
    Stats::add(&stats.files_total, plan.uploads.len() as u64);
    Stats::add(
        &stats.bytes_total,
        plan.uploads.iter().map(|(s, _)| s.size).sum(),
    );

    if opts.dry_run {
        for (s, r) in &plan.uploads {
            tracing::warn!(
                "{}: Skipped copy as --dry-run is set ({}, size {})",
                s.rel,
                r.as_str(),
                s.size
            );
        }
        if opts.mode == Mode::Sync {
            for d in &plan.deletes {
                tracing::warn!(
                    "{}: Skipped delete as --dry-run is set (size {})",
                    d.rel,
                    d.size
                );
            }
        }
        summary.requests = store.requests.snapshot();
        summary.elapsed_seconds = stats.started.elapsed().as_secs_f64();
        return Ok(summary);
    }

    let progress = Progress::start(stats.clone(), opts.progress, opts.stats_interval);
    let needs_multipart = plan
        .uploads
        .iter()
        .any(|(s, _)| s.size > 0 && s.size >= limits.upload_cutoff);
    let pending = if needs_multipart {
        pending_uploads(&store).await?
    } else {
        HashMap::new()
    };
    let known_blobs = Arc::new(std::sync::Mutex::new(listed_blobs));
    let (io, why) = opts.io.clone();
    tracing::info!("reading with {}: {why}", io.name());
    summary.io_engine = io.name();
    summary.io_engine_reason = why;
    let ctx = Arc::new(UploadCtx {
        io,
        store: store.clone(),
        budget: Budget::new(limits.buffer_memory),
        limits: limits.clone(),
        stats: stats.clone(),
        integrity_retries: opts.integrity_retries,
        pending,
        registry: opts.registry.clone().map(|layout| RegistryCtx {
            layout,
            known_blobs: known_blobs.clone(),
        }),
    });
    let queue = Queue::new(plan.uploads, opts.registry.as_ref(), &known_blobs);
    upload_all(&ctx, queue, &known_blobs, &mut summary).await;

    if opts.mode == Mode::Sync && !plan.deletes.is_empty() {
        if summary.errors() > 0 {
            tracing::error!("{src_name}: not deleting files as there were IO errors");
            summary.deletes_refused = true;
        } else if summary.files_source == 0 && opts.max_delete.is_none() {
            // An empty source would empty the bucket: far more often an unmounted or wrong
            // volume than an intent. Make the operator say so.
            summary.error(
                false,
                format!(
                    "{src_name}: not deleting {n} objects: the source has no files (is the volume mounted?); pass --max-delete {n} to allow it",
                    n = plan.deletes.len(),
                ),
            );
            summary.deletes_refused = true;
            summary.max_delete_exceeded = true;
        } else if opts
            .max_delete
            .is_some_and(|m| plan.deletes.len() as u64 > m)
        {
            summary.error(
                false,
                format!(
                    "not deleting: {} objects to delete exceeds --max-delete {}: raise it or check the source",
                    plan.deletes.len(),
                    opts.max_delete.unwrap_or(0)
                ),
            );
            summary.deletes_refused = true;
            summary.max_delete_exceeded = true;
        } else {
            delete_all(&store, &limits, plan.deletes, &stats, &mut summary).await;
        }
    }
    progress.finish().await;
    summary.elapsed_seconds = stats.started.elapsed().as_secs_f64();
    summary.bytes_reused = stats
        .bytes_reused
        .load(std::sync::atomic::Ordering::Relaxed);
    summary.retries = stats.retries.load(std::sync::atomic::Ordering::Relaxed);
    summary.requests = store.requests.snapshot();
    tracing::warn!(
        "{} | uploaded {} files ({}), {} reused from interrupted uploads, {} unchanged, {} deleted, {} errors",
        stats.line(),
        summary.files_uploaded,
        report::bytes(summary.bytes_uploaded),
        report::bytes(summary.bytes_reused),
        summary.files_skipped,
        summary.deleted,
        summary.errors()
    );
    Ok(summary)
}

/// The order files are uploaded in. Without registry mode: as planned. In registry mode,
/// links and blobs are interleaved so that neither the request rate (71-byte links) nor the
/// bandwidth (blobs) idles, and no link is uploaded before its blob is in the bucket:
/// - a link whose path names a blob the bucket already holds is ready at once;
/// - one whose blob this run uploads waits for that upload to complete;
/// - the rest (tag `current` links, which name no digest, and links to blobs neither listed
///   nor uploaded here: another shard's, or missing) go last, when everything else is done,
///   and are checked against the bucket then.
struct Queue {
    files: VecDeque<(SrcEntry, Reason)>,
    ready_links: VecDeque<(SrcEntry, Reason)>,
    waiting: HashMap<String, Vec<(SrcEntry, Reason)>>,
    last: Vec<(SrcEntry, Reason)>,
    layout: Option<Layout>,
}

impl Queue {
    fn new(
        uploads: Vec<(SrcEntry, Reason)>,
        layout: Option<&Layout>,
        known: &std::sync::Mutex<HashSet<String>>,
    ) -> Queue {
        let mut q = Queue {
            files: VecDeque::new(),
            ready_links: VecDeque::new(),
            waiting: HashMap::new(),
            last: Vec::new(),
            layout: layout.cloned(),
        };
        let Some(layout) = layout else {
            q.files = uploads.into();
            return q;
        };
        let uploading: HashSet<String> =
            layout.blob_digests(uploads.iter().map(|(s, _)| s.rel.as_str()));
        let known = known.lock().expect("known blobs");
        for u in uploads {
            match layout.kind(&u.0.rel) {
                Kind::Link {
                    path_digest: Some(d),
                } if known.contains(&d) => q.ready_links.push_back(u),
                Kind::Link {
                    path_digest: Some(d),
                } if uploading.contains(&d) => q.waiting.entry(d).or_default().push(u),
                Kind::Link { .. } => q.last.push(u),
                _ => q.files.push_back(u),
            }
        }
        q
    }

    /// The next file to start, given how many links are in flight out of `slots`.
    fn next(&mut self, links_in_flight: usize, slots: usize) -> Option<(SrcEntry, Reason)> {
        let links_first = links_in_flight < slots.div_ceil(2) || self.files.is_empty();
        if links_first && let Some(u) = self.ready_links.pop_front() {
            return Some(u);
        }
        self.files
            .pop_front()
            .or_else(|| self.ready_links.pop_front())
    }

    fn is_link(&self, rel: &str) -> bool {
        self.layout
            .as_ref()
            .is_some_and(|l| matches!(l.kind(rel), Kind::Link { .. }))
    }

    /// A file finished: a blob's waiting links become ready (uploaded) or go last (failed).
    fn finished(&mut self, rel: &str, ok: bool) {
        let Some(layout) = &self.layout else { return };
        if let Kind::Blob { digest } = layout.kind(rel)
            && let Some(links) = self.waiting.remove(&digest)
        {
            if ok {
                self.ready_links.extend(links);
            } else {
                self.last.extend(links);
            }
        }
    }

    /// Nothing is running: release what goes last. False when the queue is empty.
    fn release_last(&mut self) -> bool {
        // Links still waiting here wait on a blob that was never reported done.
        let waiting: Vec<_> = self.waiting.drain().flat_map(|(_, v)| v).collect();
        self.last.extend(waiting);
        if self.last.is_empty() {
            return false;
        }
        self.ready_links.extend(self.last.drain(..));
        true
    }
}

/// Upload the queue, `--transfers` at a time.
async fn upload_all(
    ctx: &Arc<UploadCtx>,
    mut queue: Queue,
    known: &std::sync::Mutex<HashSet<String>>,
    summary: &mut SyncSummary,
) {
    let slots = ctx.limits.transfers.max(1);
    let mut set = JoinSet::new();
    let mut links_in_flight = 0usize;
    loop {
        while set.len() < slots {
            let Some((entry, reason)) = queue.next(links_in_flight, slots) else {
                break;
            };
            let link = queue.is_link(&entry.rel);
            links_in_flight += usize::from(link);
            let task_ctx = ctx.clone();
            set.spawn(async move {
                let _flight = task_ctx.stats.start_one();
                let size = entry.size;
                let rel = entry.rel.clone();
                let r = upload::upload(task_ctx.clone(), entry).await;
                (link, (rel, size, reason, r))
            });
        }
        let Some(r) = set.join_next().await else {
            if queue.release_last() {
                continue;
            }
            break;
        };
        let (link, r) = r.expect("upload task");
        links_in_flight -= usize::from(link);
        let rel = r.0.clone();
        let ok = record(r, ctx, summary).is_some();
        if ok
            && let Some(layout) = &queue.layout
            && let Kind::Blob { digest } = layout.kind(&rel)
        {
            known.lock().expect("known blobs").insert(digest);
        }
        queue.finished(&rel, ok);
    }
}

fn record(
    (rel, size, reason, r): (
        String,
        u64,
        Reason,
        Result<upload::Uploaded, upload::UploadError>,
    ),
    ctx: &UploadCtx,
    summary: &mut SyncSummary,
) -> Option<String> {
    match r {
        Ok(u) => {
            Stats::add(&ctx.stats.files_done, 1);
            summary.files_uploaded += 1;
            summary.bytes_uploaded += size - u.reused_bytes;
            if u.resumed {
                summary.files_resumed += 1;
            }
            if u.proof == Proof::NotComparable {
                summary.hash_not_comparable += 1;
                tracing::info!(
                    "{rel}: Copied ({}); ETag is not an MD5, `check` will download to verify",
                    reason.as_str()
                );
            } else {
                tracing::info!("{rel}: Copied ({})", reason.as_str());
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

async fn delete_all(
    store: &Arc<Store>,
    limits: &Limits,
    deletes: Vec<crate::plan::DstEntry>,
    stats: &Arc<Stats>,
    summary: &mut SyncSummary,
) {
    let sem = Arc::new(Semaphore::new(limits.checkers));
    let mut set = JoinSet::new();
    for d in deletes {
        let (store, sem) = (store.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            let r = store.delete(&d.rel).await;
            (d.rel, r)
        });
    }
    while let Some(r) = set.join_next().await {
        let (rel, r) = r.expect("delete task");
        match r {
            Ok(()) => {
                summary.deleted += 1;
                Stats::add(&stats.deletes, 1);
                tracing::info!("{rel}: Deleted");
            }
            Err(e) => {
                let t = e.is_temporary();
                summary.error(t, format!("{rel}: Failed to delete: {e}"));
            }
        }
    }
}
