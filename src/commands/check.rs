//! The `check` command: is every source file in the bucket with the same size and content?
//!
//! Its log lines and summary follow rclone's wording (`ERROR : path: file not in S3 bucket b`,
//! `NOTICE: S3 bucket b: 0 differences found`) so greps written for rclone keep working. Unlike
//! rclone, anything not proven counts: `0 differences found` appears only when every file was
//! verified and nothing errored.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinSet;

use crate::config::filter::Filter;
use crate::config::limits::Limits;
use crate::config::registry::{BlobSet, Kind, Layout, parse_link};
use crate::march::list;
use crate::march::walk;
use crate::march::{self, LocalSide, March, Marched, RemoteSide, Side, Step};
use crate::report::requests::RequestSnapshot;
use crate::report::{Progress, ProgressMode, Stats};
use crate::s3::{S3Error, Store};
use crate::transfer::verify::{self, By, Verdict, VerifyOptions};

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Registry mode: leave `_uploads` out (unless `include_uploads`) and report dangling links.
    pub registry: Option<Layout>,
    pub include_uploads: bool,
    /// Registry mode: hash every source blob and compare with the digest its path names.
    pub verify_digests: bool,
    pub one_way: bool,
    /// The bucket is the source and the directory the destination (`check REMOTE:B DIR`):
    /// `--one-way` then proves every object is in the directory.
    pub reversed: bool,
    pub download: bool,
    pub always_download: bool,
    pub copy_links: bool,
    pub progress: ProgressMode,
    pub stats_interval: std::time::Duration,
    /// rclone's output files.
    pub combined: Option<PathBuf>,
    pub missing_on_dst: Option<PathBuf>,
    pub missing_on_src: Option<PathBuf>,
    pub differ: Option<PathBuf>,
    pub matched: Option<PathBuf>,
    pub error_file: Option<PathBuf>,
}

/// One difference, for `--report`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub kind: Outcome,
    pub detail: String,
}

/// What `check` found for one path. A difference's kind in `--report` is its snake-case name,
/// and the names are those of rclone's output files (`--missing-on-dst`, …).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Proven the same (never a difference).
    Match,
    MissingOnDst,
    MissingOnSrc,
    Size,
    Hash,
    /// Not proven either way (an ETag that is not an MD5, `--no-download`).
    Unverified,
    /// Registry mode: a link to a blob the destination does not hold.
    Dangling,
    /// Registry mode: a source blob that does not hash to its name.
    Corrupt,
    Error,
}

impl Outcome {
    /// The name in `--report` and in rclone's output files.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::MissingOnDst => "missing_on_dst",
            Outcome::MissingOnSrc => "missing_on_src",
            Outcome::Size => "size",
            Outcome::Hash => "hash",
            Outcome::Unverified => "unverified",
            Outcome::Dangling => "dangling",
            Outcome::Corrupt => "corrupt",
            Outcome::Error => "error",
        }
    }
}

/// What `check` found.
#[derive(Debug, Default, Serialize)]
pub struct CheckSummary {
    pub files_source: u64,
    pub matching: u64,
    pub missing_on_dst: u64,
    pub missing_on_src: u64,
    pub size_differ: u64,
    pub hash_differ: u64,
    pub unverified: u64,
    /// Registry mode: links to blobs the bucket does not hold.
    pub dangling_links: u64,
    /// Registry mode (`--verify-digests`): source blobs whose content does not hash to their name.
    pub corrupt_blobs: u64,
    /// Registry mode (`--verify-digests`): source blobs proven to hash to their name.
    pub blobs_digest_verified: u64,
    /// How the matching files were proven: by ETag, by the S3 checksum the server stored
    /// (one HEAD, no download), or by downloading the object.
    pub proven_by_etag: u64,
    pub proven_by_checksum: u64,
    pub proven_by_download: u64,
    pub errors: u64,
    pub bytes_verified: u64,
    pub differences_total: u64,
    pub elapsed_seconds: f64,
    pub requests: RequestSnapshot,
    /// The first [`DIFFERENCES_KEPT`] differences, by path (every one is logged);
    /// `differences_not_kept` counts the rest.
    pub differences: Vec<Difference>,
    pub differences_not_kept: u64,
}

/// Differences kept for the report: checking a tree against an empty bucket should not need
/// memory for every path; the log and rclone's output files have every one.
pub const DIFFERENCES_KEPT: usize = 1000;

impl CheckSummary {
    /// Everything that keeps "0 differences found" from being printed.
    pub fn not_ok(&self) -> u64 {
        self.missing_on_dst
            + self.missing_on_src
            + self.size_differ
            + self.hash_differ
            + self.unverified
            + self.dangling_links
            + self.corrupt_blobs
            + self.errors
    }
}

/// Registry mode: what proves links. Every source link must be valid and point at a blob the
/// bucket holds; a link that does not is what users would see as "blob unknown" after the
/// migration.
struct Links {
    layout: Layout,
    /// Blobs in the listing so far (noted by the march). Blobs (`…/blobs/…`) come before links
    /// (`…/repositories/…`) in key order, so by the time a link is checked every listed blob
    /// is here.
    listed: Arc<std::sync::Mutex<BlobSet>>,
    /// Blobs not in the listing (another shard's?) that the bucket was asked about.
    asked: std::sync::Mutex<HashMap<String, bool>>,
}

impl Links {
    /// Check one link file; a difference if it is invalid or dangling.
    async fn check(
        &self,
        store: &Store,
        rel: String,
        path: PathBuf,
        path_digest: Option<String>,
    ) -> Option<Difference> {
        let bytes = match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Some(link_error(rel, e.to_string())),
            Err(e) => return Some(link_error(rel, e.to_string())),
        };
        let target = match parse_link(&bytes, path_digest.as_deref()) {
            Ok(t) => t,
            Err(e) => return Some(link_error(rel, e.to_string())),
        };
        if self.listed.lock().expect("listed blobs").contains(&target) {
            return None;
        }
        let cached = self
            .asked
            .lock()
            .expect("asked blobs")
            .get(&target)
            .copied();
        let present = match cached {
            Some(p) => p,
            None => match store.exists(&self.layout.blob_path(&target)).await {
                Ok(p) => {
                    let mut asked = self.asked.lock().expect("asked blobs");
                    asked.insert(target.clone(), p);
                    p
                }
                Err(e) => {
                    return Some(Difference {
                        path: rel,
                        kind: Outcome::Error,
                        detail: format!("could not ask the bucket for blob sha256:{target}: {e}"),
                    });
                }
            },
        };
        (!present).then(|| Difference {
            path: rel,
            kind: Outcome::Dangling,
            detail: format!("dangling link: blob sha256:{target} is not in the bucket"),
        })
    }
}

fn link_error(path: String, e: String) -> Difference {
    Difference {
        path,
        kind: Outcome::Error,
        detail: format!("invalid link: {e}"),
    }
}

/// What one check task found.
enum Found {
    /// A file's verdict.
    Verdict {
        rel: String,
        size: u64,
        /// `None`: not in the destination.
        verdict: Option<Verdict>,
        /// Its blob digest was checked.
        blob: bool,
        /// The object was written after the file last changed, so a difference means
        /// another writer replaced it.
        replaced: bool,
    },
    /// A link's check.
    Link(Option<Difference>),
}

impl CheckSummary {
    /// Count, log and write out one difference; keep the first [`DIFFERENCES_KEPT`] for the
    /// report.
    fn differ(&mut self, d: Difference, outputs: &mut Outputs) {
        match d.kind {
            Outcome::MissingOnDst => self.missing_on_dst += 1,
            Outcome::MissingOnSrc => self.missing_on_src += 1,
            Outcome::Size => self.size_differ += 1,
            Outcome::Hash => self.hash_differ += 1,
            Outcome::Unverified => self.unverified += 1,
            Outcome::Dangling => self.dangling_links += 1,
            Outcome::Corrupt => self.corrupt_blobs += 1,
            Outcome::Error | Outcome::Match => self.errors += 1,
        }
        if d.detail.starts_with(&d.path) {
            tracing::error!("{}", d.detail);
        } else {
            tracing::error!("{}: {}", d.path, d.detail);
        }
        outputs.write(d.kind.name(), &d.path);
        if self.differences.len() < DIFFERENCES_KEPT {
            self.differences.push(d);
        } else {
            self.differences_not_kept += 1;
        }
    }

    /// Count what a task found; differences are logged as found, matches go to the output
    /// files.
    fn found(&mut self, found: Found, outputs: &mut Outputs, dst_name: &str) {
        let (rel, size, v, blob, replaced) = match found {
            Found::Link(d) => {
                if let Some(d) = d {
                    self.differ(d, outputs);
                }
                return;
            }
            Found::Verdict {
                rel,
                size,
                verdict,
                blob,
                replaced,
            } => (rel, size, verdict, blob, replaced),
        };
        if blob && !matches!(v, Some(Verdict::CorruptSource(_) | Verdict::Error(_))) {
            self.blobs_digest_verified += 1;
        }
        let (kind, detail) = match v {
            None => (Outcome::MissingOnDst, format!("file not in {dst_name}")),
            Some(Verdict::Match(by)) => {
                match by {
                    By::Etag => self.proven_by_etag += 1,
                    By::Checksum => self.proven_by_checksum += 1,
                    By::Download => self.proven_by_download += 1,
                }
                self.matching += 1;
                self.bytes_verified += size;
                outputs.write("match", &rel);
                return;
            }
            Some(Verdict::SizeDiffers) => (Outcome::Size, "sizes differ".to_string()),
            Some(Verdict::HashDiffers) if replaced => (
                Outcome::Hash,
                "md5 differ: the object is newer than its file and differs (another writer replaced it): `sync --checksum` uploads the file again".to_string(),
            ),
            Some(Verdict::HashDiffers) => (Outcome::Hash, "md5 differ".to_string()),
            Some(Verdict::Unverified(why)) => {
                (Outcome::Unverified, format!("hash could not be checked: {why}"))
            }
            Some(Verdict::CorruptSource(e)) => (Outcome::Corrupt, e),
            Some(Verdict::Error(e)) => (Outcome::Error, format!("error checking: {e}")),
        };
        self.differ(
            Difference {
                path: rel,
                kind,
                detail,
            },
            outputs,
        );
    }
}

/// What `check` does with one key of the march: a pure function of which sides hold it and
/// what it is in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// A source file: counted in `files_source`.
    source: bool,
    /// Registry mode: prove this link (the digest its path names, if any) holds a valid
    /// reference to a blob the destination has.
    link: Option<Option<String>>,
    compare: Compare,
}

/// What a [`Plan`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Compare {
    Nothing,
    MissingOnDst,
    MissingOnSrc,
    /// Compare size and content; with `--verify-digests`, also hash the source blob against
    /// the digest its path names.
    Verify {
        blob: Option<String>,
    },
}

fn decide(src: bool, dst: bool, kind: Option<&Kind>, one_way: bool, verify_digests: bool) -> Plan {
    let link = match kind {
        Some(Kind::Link { path_digest }) if src => Some(path_digest.clone()),
        _ => None,
    };
    let what = match (src, dst) {
        (false, false) => Compare::Nothing,
        (false, true) if one_way => Compare::Nothing,
        (false, true) => Compare::MissingOnSrc,
        (true, false) => Compare::MissingOnDst,
        (true, true) => Compare::Verify {
            blob: match kind {
                Some(Kind::Blob { digest }) if verify_digests => Some(digest.clone()),
                _ => None,
            },
        },
    };
    Plan {
        source: src,
        link,
        compare: what,
    }
}

/// rclone `--combined` markers.
fn marker(kind: &str) -> char {
    match kind {
        "match" => '=',
        "missing_on_dst" => '-',
        "missing_on_src" => '+',
        "error" | "unverified" | "dangling" | "corrupt" => '!',
        _ => '*',
    }
}

struct Outputs {
    files: Vec<(&'static str, std::fs::File)>,
}

impl Outputs {
    fn open(o: &CheckOptions) -> std::io::Result<Outputs> {
        let mut files = Vec::new();
        for (kind, path) in [
            ("combined", &o.combined),
            ("missing_on_dst", &o.missing_on_dst),
            ("missing_on_src", &o.missing_on_src),
            ("differ", &o.differ),
            ("match", &o.matched),
            ("error", &o.error_file),
        ] {
            if let Some(p) = path {
                files.push((kind, std::fs::File::create(p)?));
            }
        }
        Ok(Outputs { files })
    }

    /// One path per line: control characters in a name are escaped, so a name cannot add
    /// a line to the list.
    fn write(&mut self, kind: &'static str, path: &str) {
        let path = crate::report::redact::escape_controls(path);
        for (which, f) in self.files.iter_mut() {
            let line = match *which {
                "combined" => format!("{} {path}\n", marker(kind)),
                "differ" if matches!(kind, "size" | "hash") => format!("{path}\n"),
                "error" if matches!(kind, "error" | "unverified" | "dangling" | "corrupt") => {
                    format!("{path}\n")
                }
                w if w == kind => format!("{path}\n"),
                _ => continue,
            };
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// An entry only in the bucket, named as the march's local side would name it: for the
/// missing-on-destination line of a reversed check (the path is what matters).
fn local_of(d: list::ListedObject, root: &Path) -> walk::LocalFile {
    walk::LocalFile {
        path: root.join(&d.rel),
        rel: d.rel,
        size: d.size,
        mtime: d.last_modified,
        ctime: d.last_modified,
    }
}

/// A local entry named as the bucket's side would name it, for the reverse.
fn remote_of(l: walk::LocalFile) -> list::ListedObject {
    list::ListedObject {
        rel: l.rel,
        size: l.size,
        etag: String::new(),
        last_modified: l.mtime,
    }
}

/// The summary lines (rclone's wording) once every key was checked.
fn conclude(s: &mut CheckSummary, src_name: &str, dst_name: &str, opts: &CheckOptions) {
    s.differences.sort_by(|a, b| a.path.cmp(&b.path));
    s.differences_total = s.not_ok();

    if s.missing_on_dst > 0 {
        tracing::warn!("{dst_name}: {} files missing", s.missing_on_dst);
    }
    if s.missing_on_src > 0 {
        tracing::warn!("{src_name}: {} files missing", s.missing_on_src);
    }
    tracing::warn!("{dst_name}: {} differences found", s.differences_total);
    if s.errors > 0 {
        tracing::warn!("{dst_name}: {} errors while checking", s.errors);
    }
    if s.unverified > 0 {
        tracing::warn!("{dst_name}: {} hashes could not be checked", s.unverified);
    }
    if s.dangling_links > 0 {
        tracing::warn!(
            "{dst_name}: {} dangling links (blob unknown after migration)",
            s.dangling_links
        );
    }
    if s.corrupt_blobs > 0 {
        tracing::warn!(
            "{src_name}: {} corrupt blobs (content does not match their digest)",
            s.corrupt_blobs
        );
    }
    if opts.verify_digests && opts.registry.is_some() {
        tracing::info!(
            "{src_name}: {} blobs hash to their digest",
            s.blobs_digest_verified
        );
    }
    crate::report::termination::set_outcome(format!(
        "{dst_name}: {} differences found; {} matching files, {} missing, {} errors, {} not verified",
        s.differences_total,
        s.matching,
        s.missing_on_dst + s.missing_on_src,
        s.errors,
        s.unverified
    ));
    if s.matching > 0 {
        tracing::warn!("{dst_name}: {} matching files", s.matching);
        tracing::info!(
            "{dst_name}: matching files proven: {} by ETag, {} by checksum, {} by download",
            s.proven_by_etag,
            s.proven_by_checksum,
            s.proven_by_download
        );
    }
}

/// Why a check stopped as a whole (a file that differs or fails never stops it).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Listing the bucket failed.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// An output file (`--combined`, `--missing-on-dst`, …) could not be written.
    #[error(transparent)]
    Output(#[from] std::io::Error),
    /// A verification task panicked.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// One check while it runs: the verdicts in flight (at most `--checkers`), the summary they
/// add up to, and the output files. The two pairings (a directory and a bucket, either way;
/// two buckets) share it, each bringing only what one key of the march needs.
struct Checking {
    s: CheckSummary,
    outputs: Outputs,
    tasks: JoinSet<Found>,
    in_flight: usize,
    stats: Arc<Stats>,
    src_name: String,
    dst_name: String,
}

impl Checking {
    fn new(
        opts: &CheckOptions,
        limits: &Limits,
        stats: Arc<Stats>,
        src_name: String,
        dst_name: String,
    ) -> Result<Checking, CheckError> {
        Ok(Checking {
            s: CheckSummary::default(),
            outputs: Outputs::open(opts)?,
            tasks: JoinSet::new(),
            in_flight: limits.checkers.max(1),
            stats,
            src_name,
            dst_name,
        })
    }

    /// Walk the march to its end, handing each key to `step`, then add up every verdict and
    /// write the summary lines. A listing that fails stops the check (the verdicts in
    /// flight are still counted); a key that fails is one error among the differences.
    async fn drive<A: Side, B: Side>(
        mut self,
        mut march: March<A, B>,
        opts: &CheckOptions,
        progress: Progress,
        mut step: impl FnMut(&mut Checking, Marched<A::Entry, B::Entry>),
    ) -> Result<CheckSummary, CheckError> {
        let mut failed = None;
        loop {
            while self.tasks.len() >= self.in_flight {
                let found = self.tasks.join_next().await.expect("a task")?;
                self.found(found);
            }
            match march.next().await {
                None => break,
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                Some(Ok(Marched {
                    step: Step::Error(e),
                    ..
                })) => self.differ(Difference {
                    path: e.path().to_string(),
                    kind: Outcome::Error,
                    detail: e.to_string(),
                }),
                Some(Ok(m)) => step(&mut self, m),
            }
        }
        while let Some(found) = self.tasks.join_next().await {
            self.found(found?);
        }
        progress.finish().await;
        if let Some(e) = failed {
            return Err(e.into());
        }
        conclude(&mut self.s, &self.src_name, &self.dst_name, opts);
        self.s.elapsed_seconds = self.stats.started.elapsed().as_secs_f64();
        Ok(self.s)
    }

    fn differ(&mut self, d: Difference) {
        self.s.differ(d, &mut self.outputs);
    }

    fn found(&mut self, found: Found) {
        self.s.found(found, &mut self.outputs, &self.dst_name);
    }

    /// A key only the destination has (reported without `--one-way`).
    fn missing_on_src(&mut self, rel: String) {
        let detail = format!("file not in {}", self.src_name);
        self.differ(Difference {
            path: rel,
            kind: Outcome::MissingOnSrc,
            detail,
        });
    }

    /// A key only the source has.
    fn missing_on_dst(&mut self, rel: String) {
        self.found(Found::Verdict {
            rel,
            size: 0,
            verdict: None,
            blob: false,
            replaced: false,
        });
    }

    /// Prove one pair in a task of its own: `verify` gives the verdict, after which the
    /// pair's bytes count as checked.
    fn verify(
        &mut self,
        rel: String,
        size: u64,
        blob: bool,
        verify: impl Future<Output = (Verdict, bool)> + Send + 'static,
    ) {
        Stats::add(&self.stats.checks_total, 1);
        Stats::add(&self.stats.bytes_total, size);
        let stats = self.stats.clone();
        self.tasks.spawn(async move {
            let _f = stats.start_one();
            let (v, replaced) = verify.await;
            Stats::add(&stats.checks_done, 1);
            if let Verdict::Match(by) = &v {
                Stats::add(
                    match by {
                        By::Etag => &stats.proofs.etag,
                        By::Checksum => &stats.proofs.checksum,
                        By::Download => &stats.proofs.download,
                    },
                    1,
                );
            }
            stats.skipped(size);
            Found::Verdict {
                rel,
                size,
                verdict: Some(v),
                blob,
                replaced,
            }
        });
    }
}

/// Run `check` of `root` against `store` (with `opts.reversed`, of `store` against `root`).
pub async fn run(
    store: Arc<Store>,
    root: &Path,
    filter: Filter,
    limits: Limits,
    opts: CheckOptions,
) -> Result<CheckSummary, CheckError> {
    let stats = Stats::of_run(store.requests.clone());
    let (mut dst_name, mut src_name) = (
        store.path.rclone_name(),
        format!("Local file system at {}", root.display()),
    );
    if opts.reversed {
        std::mem::swap(&mut dst_name, &mut src_name);
    }
    let checking = Checking::new(&opts, &limits, stats.clone(), src_name, dst_name)?;
    let walked = walk::spawn(
        root.to_path_buf(),
        store.path.prefix.clone(),
        filter.clone(),
        opts.copy_links,
        limits.walk_threads,
    );
    let listing = list::start(&store, &filter, limits.checkers).await?;
    let links = opts.registry.clone().map(|layout| {
        Arc::new(Links {
            layout,
            listed: Default::default(),
            asked: Default::default(),
        })
    });
    let march = March::new(
        LocalSide::new(walked),
        RemoteSide::new(listing),
        links.as_ref().map(|l| march::Registry {
            layout: l.layout.clone(),
            include_uploads: opts.include_uploads,
            dst_blobs: l.listed.clone(),
        }),
    );
    let progress = Progress::start(stats, opts.progress, opts.stats_interval);
    let vopts = verify_options(&opts, &limits);
    let step = |c: &mut Checking, m: Marched<walk::LocalFile, list::ListedObject>| {
        let Marched { step, kind } = m;
        let (src, dst) = match step {
            Step::SrcOnly(src) => (Some(src), None),
            Step::Both(src, d) => (Some(src), Some(d)),
            Step::DstOnly(d) => (None, Some(d)),
            Step::Error(_) => unreachable!("the driver reports errors"),
        };
        // `src` is the local side and `dst` the bucket's; reversed, the bucket is the source.
        let (has_src, has_dst) = if opts.reversed {
            (dst.is_some(), src.is_some())
        } else {
            (src.is_some(), dst.is_some())
        };
        let plan = decide(
            has_src,
            has_dst,
            kind.as_ref(),
            opts.one_way,
            opts.verify_digests,
        );
        let (src, dst) = match (plan.compare.clone(), opts.reversed) {
            // The entry on the source's side is missing on the other, or the reverse: name it
            // by the side it is on.
            (Compare::MissingOnDst | Compare::MissingOnSrc, true) => {
                (dst.map(|d| local_of(d, root)), src.map(remote_of))
            }
            _ => (src, dst),
        };
        c.s.files_source += u64::from(plan.source);
        if let (Some(links), Some(path_digest), Some(src)) = (&links, plan.link, &src) {
            let (links, store) = (links.clone(), store.clone());
            let (rel, path) = (src.rel.clone(), src.path.clone());
            c.tasks.spawn(
                async move { Found::Link(links.check(&store, rel, path, path_digest).await) },
            );
        }
        match (plan.compare, src, dst) {
            (Compare::Nothing, ..) => {}
            (Compare::MissingOnSrc, _, Some(d)) => c.missing_on_src(d.rel),
            (Compare::MissingOnDst, Some(src), _) => c.missing_on_dst(src.rel),
            (Compare::Verify { blob }, Some(src), Some(d)) => {
                let (reversed, store) = (opts.reversed, store.clone());
                let (rel, size, digest) = (src.rel.clone(), src.size, blob.is_some());
                c.verify(rel, size, digest, async move {
                    let v = verify::verify(&store, &src, &d, vopts, blob.as_deref()).await;
                    let replaced = !reversed && crate::march::plan::untouched_since(&src, &d);
                    (v, replaced)
                });
            }
            (what, ..) => unreachable!("{what:?} without its sides"),
        }
    };
    let mut s = checking.drive(march, &opts, progress, step).await?;
    s.requests = store.requests.snapshot();
    Ok(s)
}

/// Run `check` of one bucket (or prefix) against another: every pair by size and ETag, by
/// their bytes where the ETags cannot settle it ([`verify::verify_objects`]).
pub async fn run_buckets(
    src: Arc<Store>,
    dst: Arc<Store>,
    filter: Filter,
    limits: Limits,
    opts: CheckOptions,
) -> Result<CheckSummary, CheckError> {
    let stats = Stats::of_run(dst.requests.clone());
    let (src_name, dst_name) = (src.path.rclone_name(), dst.path.rclone_name());
    let checking = Checking::new(&opts, &limits, stats.clone(), src_name, dst_name)?;
    let src_listing = list::start(&src, &filter, limits.checkers).await?;
    let dst_listing = list::start(&dst, &filter, limits.checkers).await?;
    let march = March::new(
        RemoteSide::new(src_listing),
        RemoteSide::new(dst_listing),
        None,
    );
    let progress = Progress::start(stats, opts.progress, opts.stats_interval);
    let vopts = verify_options(&opts, &limits);
    let step = |c: &mut Checking, m: Marched<list::ListedObject, list::ListedObject>| {
        let (a, b) = match m.step {
            Step::SrcOnly(a) => (Some(a), None),
            Step::Both(a, b) => (Some(a), Some(b)),
            Step::DstOnly(b) => (None, Some(b)),
            Step::Error(_) => unreachable!("the driver reports errors"),
        };
        let plan = decide(a.is_some(), b.is_some(), None, opts.one_way, false);
        c.s.files_source += u64::from(plan.source);
        match (plan.compare, a, b) {
            (Compare::Nothing, ..) => {}
            (Compare::MissingOnSrc, _, Some(b)) => c.missing_on_src(b.rel),
            (Compare::MissingOnDst, Some(a), _) => c.missing_on_dst(a.rel),
            (Compare::Verify { .. }, Some(a), Some(b)) => {
                let (src, dst) = (src.clone(), dst.clone());
                c.verify(a.rel.clone(), a.size, false, async move {
                    (
                        verify::verify_objects(&src, &a, &dst, &b, vopts).await,
                        false,
                    )
                });
            }
            (what, ..) => unreachable!("{what:?} without its sides"),
        }
    };
    let mut s = checking.drive(march, &opts, progress, step).await?;
    s.requests = dst.requests.snapshot();
    Ok(s)
}

fn verify_options(opts: &CheckOptions, limits: &Limits) -> VerifyOptions {
    VerifyOptions {
        download: opts.download,
        always_download: opts.always_download,
        parallel_parts: limits.parts_per_file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_markers_are_rclones() {
        assert_eq!(marker("match"), '=');
        assert_eq!(marker("missing_on_dst"), '-');
        assert_eq!(marker("missing_on_src"), '+');
        assert_eq!(marker("size"), '*');
        assert_eq!(marker("hash"), '*');
        assert_eq!(marker("error"), '!');
    }

    #[test]
    fn plans() {
        let blob = Kind::Blob { digest: "d".into() };
        let link = Kind::Link {
            path_digest: Some("d".into()),
        };
        let verify = |blob: Option<&str>| Compare::Verify {
            blob: blob.map(String::from),
        };
        // (on src, on dst, kind, one way, verify digests) → (source, link, what)
        let cases = [
            (true, true, None, false, false, (true, None, verify(None))),
            (
                true,
                false,
                None,
                true,
                false,
                (true, None, Compare::MissingOnDst),
            ),
            (
                false,
                true,
                None,
                false,
                false,
                (false, None, Compare::MissingOnSrc),
            ),
            (
                false,
                true,
                None,
                true,
                false,
                (false, None, Compare::Nothing),
            ),
            (
                true,
                true,
                Some(&blob),
                false,
                false,
                (true, None, verify(None)),
            ),
            (
                true,
                true,
                Some(&blob),
                false,
                true,
                (true, None, verify(Some("d"))),
            ),
            (
                false,
                true,
                Some(&blob),
                true,
                true,
                (false, None, Compare::Nothing),
            ),
            (
                true,
                true,
                Some(&link),
                false,
                false,
                (true, Some(Some("d".to_string())), verify(None)),
            ),
            (
                true,
                false,
                Some(&link),
                false,
                false,
                (true, Some(Some("d".to_string())), Compare::MissingOnDst),
            ),
            (
                false,
                true,
                Some(&link),
                false,
                false,
                (false, None, Compare::MissingOnSrc),
            ),
            (
                true,
                true,
                Some(&Kind::Other),
                false,
                true,
                (true, None, verify(None)),
            ),
        ];
        for (src, dst, kind, one_way, digests, (source, link, what)) in cases {
            assert_eq!(
                decide(src, dst, kind, one_way, digests),
                Plan {
                    source,
                    link,
                    compare: what
                },
                "{src} {dst} {kind:?} {one_way} {digests}"
            );
        }
    }

    #[test]
    fn zero_differences_needs_everything_verified() {
        let mut s = CheckSummary::default();
        assert_eq!(s.not_ok(), 0);
        s.unverified = 1;
        assert_eq!(s.not_ok(), 1, "an unverified file is never silently OK");
        s.unverified = 0;
        s.errors = 2;
        assert_eq!(s.not_ok(), 2);
    }
}
