//! `copy REMOTE:BUCKET[/PREFIX] DIR`: restore objects into a local directory (rolling a
//! migration back, or bringing a registry back onto a volume), on the same march as every
//! other command: the listing is the source side, a walk of the directory the destination
//! side, and each key is one decision ([`decide`]).
//!
//! Every object written is proven (see [`crate::transfer::download`]) and lands under its name only
//! once whole. A file already there is kept when its size and mtime equal the object's (the
//! mtime the object records, else its LastModified: what a restore sets), so a rerun fetches
//! only what is missing or different. Files only in the directory are left alone by `copy`;
//! `sync` deletes them once every object was restored, under the rules every sync follows.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::commands::delete::Ending;
use crate::commands::drive::{Direction, Driven, LinkOrder, Next, Planned, Schedule, drive};
use crate::commands::schedule::{Cut, stopped};
use crate::commands::{Mode, RunOptions};
use crate::config::filter::Filter;
use crate::config::limits::Limits;
use crate::config::registry::Kind;
use crate::march::list::{self, ListedObject};
use crate::march::plan::same_mtime;
use crate::march::walk::{self, LocalFile, WalkError};
use crate::march::{self, LocalSide, March, Marched, RemoteSide, Step};
use crate::read::Budget;
use crate::report::class::Class;
use crate::report::{self, Stats};
use crate::s3::{S3Error, Store};
use crate::transfer::confine::Root;
use crate::transfer::download::{self, DownloadError, Expect, Fetcher, KeyError, Proof};

/// How to run a restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// What every direction is told.
    pub run: RunOptions,
    /// Keep any file of the same size (`--size-only`), or any file at all
    /// (`--ignore-existing`).
    pub size_only: bool,
    pub ignore_existing: bool,
    /// `--direct-io auto`: large files are written past the page cache.
    pub direct_io: bool,
}

/// What a restore did, for the exit code, the summary line and `--report`.
#[derive(Debug, Default, Serialize)]
pub struct RestoreSummary {
    pub objects_source: u64,
    pub files_restored: u64,
    pub bytes_restored: u64,
    pub files_unchanged: u64,
    /// Bytes an interrupted restore had already written and proven, not fetched again.
    pub bytes_resumed: u64,
    /// Folder markers (`photos/`, no bytes): nothing to restore.
    pub folder_markers: u64,
    /// Restored and proven by the ETag (the MD5 of the bytes, or the composite of their parts').
    pub proven_by_etag: u64,
    /// Restored where the ETag is not an MD5, proven by the S3 checksum the server stored.
    pub proven_by_checksum: u64,
    /// Restored, but the ETag is not an MD5 (SSE-KMS, SSE-C) and no checksum is stored:
    /// sizes only.
    pub hash_not_comparable: u64,
    /// Deletions and limits: how the run ended.
    #[serde(flatten)]
    pub ending: Ending,
    pub dry_run: bool,
    pub elapsed_seconds: f64,
    pub requests: crate::report::requests::RequestSnapshot,
    #[serde(flatten)]
    pub failures: crate::report::class::Tally,
}

impl RestoreSummary {
    pub fn errors(&self) -> u64 {
        self.failures.count()
    }

    fn error(&mut self, class: crate::report::class::Class, message: String) {
        self.failures.add(class, message);
    }
}

/// What to do with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Fetch,
    Keep,
    /// Same size, mtime unknown until a HEAD: fetch unless the object's mtime equals the
    /// file's.
    CompareMtime,
}

/// The decision for an object and the file at its path, if any.
pub fn decide(obj: &ListedObject, local: Option<&LocalFile>, opts: &RestoreOptions) -> Decision {
    match local {
        None => Decision::Fetch,
        Some(_) if opts.ignore_existing => Decision::Keep,
        Some(l) if l.size != obj.size => Decision::Fetch,
        Some(_) if opts.size_only => Decision::Keep,
        Some(_) => Decision::CompareMtime,
    }
}

enum Done {
    Restored(u64, Proof),
    Unchanged,
}

/// Why a restore stopped as a whole (one object's failure never does).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot create or open the destination directory: {0}")]
    Destination(crate::transfer::confine::Refused),
    /// Listing the bucket failed.
    #[error(transparent)]
    S3(#[from] S3Error),
}

/// Restore everything under the store's prefix into `root`.
pub async fn run(
    store: Arc<Store>,
    root: PathBuf,
    filter: Filter,
    limits: Limits,
    opts: RestoreOptions,
) -> Result<RestoreSummary, RestoreError> {
    // Every write goes through the directory held open here, never through a symlink.
    let dest = if opts.run.dry_run {
        None
    } else {
        Some(Arc::new(
            Root::open(&root, true).map_err(RestoreError::Destination)?,
        ))
    };
    let listing = list::start(&store, &filter, limits.checkers).await?;
    let walked = walk::spawn(
        root.clone(),
        String::new(),
        opts.run.destination_filter(&filter),
        false,
        limits.walk_threads,
    );
    let stats = Stats::of_run(store.requests.clone());
    let progress = opts.run.progress(&stats);
    let mut march = March::new(
        RemoteSide::new(listing),
        LocalSide::new(walked),
        opts.run.registry.clone().map(|layout| march::Registry {
            layout,
            include_uploads: opts.run.include_uploads,
            dst_blobs: Default::default(),
        }),
    );
    // Registry mode: links wait until every blob before them is written (keys come in order,
    // and `blobs/` sorts before `repositories/`), so a reader of the directory never finds a
    // link to a blob that is not there yet; after a failed blob, no link is written.
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
    let mut restore = Restore {
        summary: RestoreSummary {
            dry_run: opts.run.dry_run,
            ..RestoreSummary::default()
        },
        fetcher: Fetcher {
            store: store.clone(),
            budget: Budget::new(limits.buffer_memory).watched_by(&stats),
            limits: limits.clone(),
            stats: stats.clone(),
            direct: opts.direct_io,
        },
        dest,
        root,
        deletes: Vec::new(),
        opts,
    };
    let Driven { failed, cut } = drive(&mut march, &mut restore, schedule).await;
    let Restore {
        summary,
        dest,
        deletes,
        opts,
        ..
    } = restore;
    if let Some(c) = cut {
        stopped(c, &opts.run.cutoff);
    }
    if let Some(p) = progress {
        p.finish().await;
    }
    if let Some(e) = failed {
        return Err(RestoreError::S3(e));
    }
    Ok(end(
        summary,
        deletes,
        cut,
        &opts,
        &store,
        dest.as_deref(),
        &stats,
    ))
}

/// The end of a restore: the cutoff, the deletion tail, and the summary line.
fn end(
    mut summary: RestoreSummary,
    deletes: Vec<LocalFile>,
    cut: Option<Cut>,
    opts: &RestoreOptions,
    store: &Store,
    dest: Option<&Root>,
    stats: &Stats,
) -> RestoreSummary {
    if let Some(c) = cut {
        summary.ending.cut(c, deletes.len());
    } else {
        delete_extra(&mut summary, deletes, opts, store, dest);
    }
    summary.elapsed_seconds = stats.started.elapsed().as_secs_f64();
    summary.bytes_resumed = stats
        .bytes_reused
        .load(std::sync::atomic::Ordering::Relaxed);
    summary.requests = store.requests.snapshot();
    let line = format!(
        "{} | restored {} files ({}), {} unchanged, {} deleted, {} errors",
        stats.line(),
        summary.files_restored,
        report::bytes(summary.bytes_restored),
        summary.files_unchanged,
        summary.ending.deleted,
        summary.errors()
    );
    tracing::warn!("{line}");
    report::termination::set_outcome(line);
    summary
}

/// A restore while it runs: the direction bucket → directory of the one driver.
struct Restore {
    summary: RestoreSummary,
    fetcher: Fetcher,
    /// The destination, held open (none in a dry run).
    dest: Option<Arc<Root>>,
    root: PathBuf,
    /// Files only the directory has (`sync`): deleted at the end if all went well.
    deletes: Vec<LocalFile>,
    opts: RestoreOptions,
}

/// One object to fetch, and what is known of it.
struct Fetch {
    obj: ListedObject,
    decision: Decision,
    /// The mtime of the file at its path, if there is one.
    local_mtime: Option<SystemTime>,
    expect: Expect,
}

impl Planned for Fetch {
    fn rel(&self) -> &str {
        &self.obj.rel
    }
    fn size(&self) -> u64 {
        self.obj.size
    }
}

impl Direction for Restore {
    type Src = ListedObject;
    type Dst = LocalFile;
    type Item = Fetch;
    // A restore compares inside its transfer (one HEAD, then the fetch if it must).
    type Compare = std::future::Ready<()>;
    type Compared = ();
    type Done = Restored;

    async fn step(
        &mut self,
        marched: Marched<ListedObject, LocalFile>,
    ) -> Result<Next<Fetch, Self::Compare>, S3Error> {
        let Marched { step, kind } = marched;
        let summary = &mut self.summary;
        let (obj, local) = match step {
            Step::SrcOnly(obj) => (obj, None),
            Step::Both(obj, local) => (obj, Some(local)),
            Step::DstOnly(local) => {
                if self.opts.run.mode == Mode::Sync {
                    self.deletes.push(local);
                }
                return Ok(Next::Nothing);
            }
            Step::Error(e) => {
                // Something in the directory that no object can be: a symlink (an object
                // that needs its name is refused when it gets there), a name that is not
                // UTF-8. Left alone, as the files only the directory has are by `copy`.
                match e {
                    WalkError::Symlink { path } => tracing::warn!(
                        "{}: a symlink in the destination: left alone (a restore never writes through one)",
                        self.root.join(path).display()
                    ),
                    WalkError::NotUtf8 { path } => tracing::warn!(
                        "{}: a name that is not UTF-8, which no key can be: left alone",
                        self.root.join(path).display()
                    ),
                    e => summary.error(Class::Permanent, e.to_string()),
                }
                return Ok(Next::Nothing);
            }
        };
        summary.objects_source += 1;
        let expect = match (&kind, &self.opts.run.registry) {
            (Some(Kind::Blob { digest }), _) => Expect::Blob(digest.clone()),
            (Some(Kind::Link { path_digest }), Some(layout)) => {
                let layout = layout.clone();
                Expect::Link {
                    path_digest: path_digest.clone(),
                    blob_rel: Box::new(move |d| layout.blob_path(d)),
                }
            }
            _ => Expect::Nothing,
        };
        match download::local_path(&self.root, &obj.rel, obj.size) {
            Ok(_) => {}
            Err(KeyError::FolderMarker { .. }) => {
                summary.folder_markers += 1;
                return Ok(Next::Nothing);
            }
            Err(e) => {
                summary.error(Class::Permanent, e.to_string());
                return Ok(Next::Nothing);
            }
        };
        let decision = decide(&obj, local.as_ref(), &self.opts);
        if decision == Decision::Keep {
            summary.files_unchanged += 1;
            return Ok(Next::Nothing);
        }
        if matches!(kind, Some(Kind::Link { .. })) && summary.errors() > 0 {
            summary.error(
                Class::Temporary,
                format!(
                    "{}: link not restored: {} errors before it (a blob it needs may be missing); rerun",
                    obj.rel,
                    summary.errors()
                ),
            );
            return Ok(Next::Nothing);
        }
        let stats = &self.fetcher.stats;
        Stats::add(&stats.files_total, 1);
        Stats::add(&stats.bytes_total, obj.size);
        if self.dest.is_none() {
            tracing::warn!("{}: would restore (dry run)", obj.rel);
            return Ok(Next::Nothing);
        }
        Ok(Next::Send(Fetch {
            obj,
            decision,
            local_mtime: local.map(|l| l.mtime),
            expect,
        }))
    }

    fn send(&self, item: Fetch) -> impl Future<Output = Restored> + Send + 'static {
        let f = self.fetcher.clone();
        let dest = self.dest.clone().expect("no transfer in a dry run");
        async move {
            let Fetch {
                obj,
                decision,
                local_mtime,
                expect,
            } = item;
            let r = restore_one(&f, &dest, &obj, decision, local_mtime, &expect).await;
            (obj.rel, r)
        }
    }

    fn record(&mut self, restored: Restored) -> bool {
        let ok = restored.1.is_ok();
        record(&mut self.summary, &self.fetcher.stats, restored);
        ok
    }
}

/// `sync`: delete the files only the directory has, under the rules every sync follows
/// ([`crate::march::plan::may_delete`]): only after a run without errors, never because the bucket
/// looked empty, never more than `--max-delete`.
fn delete_extra(
    summary: &mut RestoreSummary,
    deletes: Vec<LocalFile>,
    opts: &RestoreOptions,
    store: &Store,
    dest: Option<&Root>,
) {
    summary.ending.deletes_planned = deletes.len() as u64;
    let Some(dest) = dest.filter(|_| !opts.run.dry_run) else {
        for d in &deletes {
            tracing::warn!("{}: Skipped delete as --dry-run is set", d.rel);
        }
        return;
    };
    let src_name = format!("bucket {}", store.shown(&store.path.prefix));
    let (errors, sources, planned) = (summary.errors(), summary.objects_source, deletes.len());
    match summary.ending.allow(
        errors,
        sources,
        planned,
        opts.run.max_delete,
        &src_name,
        "files",
    ) {
        Ok(()) => {
            // Each file is removed in its directory, reached without following a symlink.
            for d in deletes {
                let (dir, name) = crate::transfer::confine::split(&d.rel);
                match dest
                    .dir(dir, false, &d.rel)
                    .and_then(|dir| dir.remove(name))
                {
                    Ok(true) => {
                        summary.ending.deleted += 1;
                        tracing::info!("{}: Deleted", d.rel);
                    }
                    // Gone, or no longer a regular file: nothing to delete.
                    Ok(false) => {}
                    Err(e) => summary.error(Class::Permanent, format!("Failed to delete: {e}")),
                }
            }
        }
        Err(Some(message)) => summary.error(Class::Permanent, message),
        Err(None) => {}
    }
}

async fn restore_one(
    f: &Fetcher,
    dest: &Arc<Root>,
    obj: &ListedObject,
    decision: Decision,
    local_mtime: Option<SystemTime>,
    expect: &Expect,
) -> Result<Done, DownloadError> {
    let _flight = f.stats.start_one();
    if decision == Decision::CompareMtime
        && let Some(local) = local_mtime
    {
        let head = f.store.head(&obj.rel, None).await?;
        if same_mtime(download::object_mtime([&head], obj.last_modified), local) {
            f.stats.skipped(obj.size);
            return Ok(Done::Unchanged);
        }
    }
    let proof = download::restore(f, dest, obj, expect).await?;
    Ok(Done::Restored(obj.size, proof))
}

/// A restore's outcome: the key, and what became of it.
type Restored = (String, Result<Done, DownloadError>);

fn record(summary: &mut RestoreSummary, stats: &Stats, restored: Restored) {
    match restored {
        (_, Ok(Done::Unchanged)) => {
            summary.files_unchanged += 1;
            Stats::add(&stats.files_done, 1);
        }
        (rel, Ok(Done::Restored(bytes, proof))) => {
            summary.files_restored += 1;
            summary.bytes_restored += bytes;
            Stats::add(&stats.files_done, 1);
            match proof {
                Proof::Unproven => {
                    summary.hash_not_comparable += 1;
                    Stats::add(&stats.proofs.not_comparable, 1);
                    tracing::warn!(
                        "{rel}: restored, but its ETag is not an MD5 and the server stores no checksum: sizes only"
                    );
                }
                Proof::Checksum => {
                    summary.proven_by_checksum += 1;
                    Stats::add(&stats.proofs.checksum, 1);
                    tracing::info!("{rel}: restored (checksum proven)");
                }
                Proof::Md5 | Proof::Composite => {
                    summary.proven_by_etag += 1;
                    Stats::add(&stats.proofs.etag, 1);
                    tracing::info!("{rel}: restored ({proof:?} proven)");
                }
            }
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

    fn obj(size: u64) -> ListedObject {
        ListedObject {
            rel: "a".into(),
            size,
            etag: String::new(),
            last_modified: SystemTime::UNIX_EPOCH,
        }
    }

    fn file(size: u64) -> LocalFile {
        LocalFile {
            rel: "a".into(),
            path: PathBuf::from("/d/a"),
            size,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn decisions() {
        let plain = RestoreOptions {
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
            direct_io: true,
        };
        let size_only = RestoreOptions {
            size_only: true,
            ..plain.clone()
        };
        let existing = RestoreOptions {
            ignore_existing: true,
            ..plain.clone()
        };
        let table = [
            (&plain, None, Decision::Fetch),
            (&plain, Some(5), Decision::Fetch),
            (&plain, Some(4), Decision::CompareMtime),
            (&size_only, Some(4), Decision::Keep),
            (&size_only, Some(5), Decision::Fetch),
            (&size_only, None, Decision::Fetch),
            (&existing, Some(5), Decision::Keep),
            (&existing, None, Decision::Fetch),
        ];
        for (opts, local, want) in table {
            let l = local.map(file);
            assert_eq!(decide(&obj(4), l.as_ref(), opts), want, "{local:?}");
        }
    }
}
