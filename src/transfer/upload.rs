//! Stage 5: upload one file and prove what was written.
//!
//! Below the cutoff a file goes in one PUT with Content-MD5, and the returned ETag must equal the
//! MD5 we computed. At or above it the file goes in parts, in parallel, each with Content-MD5
//! and its ETag checked, and the completed object's ETag must equal `md5(concat(part md5s))-N`.
//! A multipart upload left behind by an interrupted run is resumed: its listed parts are checked
//! against the local parts' MD5s and only missing or different parts are sent.
//!
//! What this stage must never do: report a file as done without proof (or an explicit
//! "hash not comparable" when the server encrypts with KMS/SSE-C), or leave an object it knows
//! to be wrong where a later run would skip it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use sha2::{Digest, Sha256};

use crate::config::limits::Limits;
use crate::config::registry::{BlobSet, Kind, Layout, parse_link};
use crate::march::walk::LocalFile;
use crate::read::checksum::{Algorithm, Checksum};
use crate::read::etag::{Md5Digest, PartPlan};
use crate::read::sha::InOrderSha;
use crate::read::{self, Budget, SourceFile};
use crate::report::Stats;
use crate::s3::{self, Head, ObjectMeta, PartInfo, S3Error, Store, UploadInfo};
pub use crate::transfer::multipart::{Proof, UploadError, prove_single};
use crate::transfer::multipart::{Retry, Session};

/// How one upload went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    pub proof: Proof,
    /// Bytes of parts reused from an interrupted upload.
    pub reused_bytes: u64,
    pub resumed: bool,
}

/// Shared state for all uploads of a run.
#[derive(Clone)]
pub struct UploadCtx {
    pub store: Arc<Store>,
    /// Reads source files.
    pub io: Arc<crate::read::IoEngine>,
    pub limits: Limits,
    pub budget: Budget,
    pub stats: Arc<Stats>,
    /// Attempts per file or part after an integrity failure (bad digest, ETag mismatch).
    pub retry: Retry,
    /// In-progress multipart uploads under the prefix, by absolute key: listed once, before
    /// the first file big enough for multipart is queued (unset when none is).
    pub pending: std::sync::OnceLock<HashMap<String, Vec<UploadInfo>>>,
    /// Registry mode: verify blobs and links as they are read.
    pub registry: Option<RegistryCtx>,
}

/// What registry mode needs while uploading.
#[derive(Debug, Clone)]
pub struct RegistryCtx {
    pub layout: Layout,
    /// Blobs known to be in the bucket: listed, or uploaded earlier in this run (the
    /// scheduler adds each blob as its upload completes). A link to any other blob is uploaded
    /// only if the bucket confirms the blob.
    pub known_blobs: Arc<std::sync::Mutex<BlobSet>>,
}

impl RegistryCtx {
    /// Whether `rel` is a blob, whose SHA-256 must be computed as it is read.
    fn is_blob(&self, rel: &str) -> bool {
        matches!(self.layout.kind(rel), Kind::Blob { .. })
    }

    /// Check a whole file's bytes: a blob must hash to its name (`sha256`, computed as it was
    /// read), a link must be valid and point to a blob the bucket has. Returns a link target
    /// that is not known to be in the bucket (its blob is in another shard, or missing): the
    /// caller asks the bucket.
    fn check(
        &self,
        rel: &str,
        data: &[u8],
        sha256: Option<[u8; 32]>,
    ) -> Result<Option<String>, UploadError> {
        let err = |message: String| UploadError::Registry {
            path: rel.to_string(),
            message,
        };
        match self.layout.kind(rel) {
            Kind::Blob { digest } => {
                let actual = hex::encode(sha256.unwrap_or_else(|| Sha256::digest(data).into()));
                if actual != digest {
                    return Err(err(corrupt_blob(&digest, &actual)));
                }
            }
            Kind::Link { path_digest } => {
                let target =
                    parse_link(data, path_digest.as_deref()).map_err(|e| err(e.to_string()))?;
                if !self
                    .known_blobs
                    .lock()
                    .expect("known blobs")
                    .contains(&target)
                {
                    return Ok(Some(target));
                }
            }
            Kind::Upload | Kind::Other => {}
        }
        Ok(None)
    }
}

fn dangling(rel: &str, target: &str) -> UploadError {
    UploadError::Registry {
        path: rel.to_string(),
        message: format!(
            "link to sha256:{target}, which is neither in the bucket nor uploaded: not uploading a dangling link"
        ),
    }
}

fn corrupt_blob(expected: &str, actual: &str) -> String {
    format!(
        "corrupt blob: its path says sha256:{expected} but its content hashes to sha256:{actual}; not uploaded"
    )
}

/// Upload one file, single or multipart by size.
pub async fn upload(ctx: Arc<UploadCtx>, entry: LocalFile) -> Result<Uploaded, UploadError> {
    if entry.size > 0 && entry.size >= ctx.limits.upload_cutoff {
        upload_multipart(ctx, entry, true).await
    } else {
        upload_single(&ctx, &entry).await
    }
}

async fn upload_single(ctx: &UploadCtx, entry: &LocalFile) -> Result<Uploaded, UploadError> {
    let is_blob = ctx.registry.as_ref().is_some_and(|r| r.is_blob(&entry.rel));
    // A registry blob carries its SHA-256, its name, for the server to check; other files
    // the run's checksum, if any.
    let checksum = if is_blob && ctx.store.put.blob_digests() {
        Some(Algorithm::Sha256)
    } else {
        ctx.store.put.checksum()
    };
    let buf = ctx.budget.buffer(entry.size).await;
    let (data, digests) = ctx
        .io
        .read_whole(
            &entry.rel,
            &entry.path,
            entry.stamp(),
            buf,
            is_blob,
            checksum,
        )
        .await?;
    let md5 = digests.md5;
    if let Some(reg) = &ctx.registry
        && let Some(target) = reg.check(&entry.rel, &data, digests.sha256)?
    {
        // Not listed here nor uploaded by this run: another shard's blob, or a missing one.
        if !ctx.store.exists(&reg.layout.blob_path(&target)).await? {
            return Err(dangling(&entry.rel, &target));
        }
    }
    let proof = crate::transfer::multipart::put_proven(
        &ctx.store,
        &ctx.stats,
        ctx.retry,
        &entry.rel,
        data,
        md5,
        digests.checksum,
        &ObjectMeta::file(entry.mtime),
    )
    .await?;
    Ok(Uploaded {
        proof,
        reused_bytes: 0,
        resumed: false,
    })
}

/// Whether an interrupted upload's parts fit our plan for this file (same part size).
pub fn adoptable(plan: &PartPlan, parts: &[PartInfo]) -> bool {
    parts.iter().all(|p| {
        p.number >= 1
            && (p.number as u64) <= plan.count
            && p.size == plan.range(p.number as u64 - 1).1
    })
}

/// Pick the interrupted upload to resume: among those whose parts fit the plan, the one with
/// the most parts. Returns its index.
pub fn choose_resumable(
    plan: &PartPlan,
    candidates: &[(UploadInfo, Vec<PartInfo>)],
) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, (_, parts))| !parts.is_empty() && adoptable(plan, parts))
        .max_by_key(|(_, (u, parts))| (parts.len(), u.initiated))
        .map(|(i, _)| i)
}

/// In-progress multipart uploads under the prefix, by key; empty where the server cannot list them.
pub async fn pending_uploads(store: &Store) -> Result<HashMap<String, Vec<UploadInfo>>, S3Error> {
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

/// The interrupted upload of `rel` to resume, among `pending` (the uploads listed under the
/// prefix, by absolute key): the one whose parts best fit `plan`, with its parts by number;
/// and the ids of the others, to abort once the object is complete.
pub async fn find_resumable(
    store: &Store,
    pending: Option<&HashMap<String, Vec<UploadInfo>>>,
    rel: &str,
    plan: &PartPlan,
) -> (Option<Resumable>, Vec<String>) {
    let key = store.key(rel);
    let Some(pending) = pending.and_then(|p| p.get(&key)) else {
        return (None, Vec::new());
    };
    let mut candidates = Vec::new();
    for u in pending {
        match store.list_parts(rel, &u.upload_id).await {
            Ok(parts) => candidates.push((u.clone(), parts)),
            Err(e) => tracing::debug!("{rel}: cannot list parts of upload: {e}"),
        }
    }
    let chosen = choose_resumable(plan, &candidates);
    let others = candidates
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != chosen)
        .map(|(_, (u, _))| u.upload_id.clone())
        .collect();
    let chosen = chosen.map(|i| {
        let (u, parts) = &candidates[i];
        Resumable {
            upload_id: u.upload_id.clone(),
            parts: parts.iter().map(|p| (p.number, p.clone())).collect(),
            // The upload goes on with the checksum it was created with: S3 takes no other
            // for its parts.
            checksum: u.checksum.as_deref().and_then(Algorithm::parse),
        }
    });
    (chosen, others)
}

/// An interrupted upload to go on with.
pub struct Resumable {
    pub upload_id: String,
    /// Its parts, by number.
    pub parts: HashMap<u32, PartInfo>,
    /// The checksum its parts carry.
    pub checksum: Option<Algorithm>,
}

async fn upload_multipart(
    ctx: Arc<UploadCtx>,
    entry: LocalFile,
    allow_resume: bool,
) -> Result<Uploaded, UploadError> {
    let plan = PartPlan::new(entry.size, ctx.limits.chunk_size, ctx.limits.max_parts).map_err(
        |source| UploadError::Parts {
            path: entry.rel.clone(),
            source,
        },
    )?;
    let file = ctx
        .io
        .open_for_ranges(&entry.rel, &entry.path, entry.stamp())
        .await?;

    let Opened {
        session,
        existing,
        stale,
        resumed,
    } = session(&ctx, &entry, &plan, allow_resume).await?;
    let session = Arc::new(session);

    // A registry blob must hash to its name: its SHA-256 is computed from the parts as they
    // are read (in order, as each next part arrives) and checked before the upload completes.
    let blob_digest = ctx
        .registry
        .as_ref()
        .and_then(|r| match r.layout.kind(&entry.rel) {
            Kind::Blob { digest } => Some(digest),
            _ => None,
        });
    let sha = blob_digest
        .as_ref()
        .map(|_| Arc::new(crate::read::sha::InOrderSha::new()));
    let parts = Parts {
        plan: &plan,
        file: &file,
        session: &session,
        existing: Arc::new(existing),
        sha: sha.clone(),
    };
    let result = send_parts(&ctx, &entry, parts).await;
    let result = match (result, sha, &blob_digest) {
        (Ok(r), Some(sha), Some(expected)) => {
            blob_hashes_to(&entry.rel, &sha, expected, plan.count).map(|()| r)
        }
        (r, _, _) => r,
    };
    let (md5s, sums, etags, reused) = match result {
        Ok(r) => r,
        Err(e) => {
            // Keep the upload for the next run to resume when the failure was temporary;
            // otherwise it can never complete, so abort it.
            session.end_after(&e).await;
            return Err(e);
        }
    };
    let f = file.clone();
    read::blocking(&entry.rel, move || f.check_unchanged())
        .await
        .inspect_err(|_| {
            let s = session.clone();
            tokio::spawn(async move { s.abort().await });
        })?;

    debug_assert_eq!(etags.len() as u64, plan.count);
    let sums: Option<Vec<(Checksum, u64)>> = sums.into_iter().collect();
    let (proof, _, headed) = session.complete(etags, &md5s, sums.as_deref()).await?;
    let proof = match proof {
        Proof::NotComparable if session.checksum.is_none() => {
            stored_proves(&ctx, &entry, &file, plan.part_size).await?
        }
        p => p,
    };
    for id in stale {
        let _ = ctx
            .store
            .abort_multipart(&ctx.store.key(&entry.rel), &id)
            .await;
    }
    if resumed && !metadata_matches(&ctx, &entry, plan.part_size, headed).await? {
        // The adopted upload was started for another version of this file (its metadata says
        // so): the bytes are right but the recorded mtime is not. Write it again, fresh.
        tracing::info!(
            "{}: resumed upload carried other metadata; uploading again",
            entry.rel
        );
        return Box::pin(upload_multipart(ctx, entry, false)).await;
    }
    Ok(Uploaded {
        proof,
        reused_bytes: reused,
        resumed,
    })
}

/// A multipart upload sent without a checksum whose ETag proves nothing (the run had not yet
/// learnt that ETags here are not MD5s): where the server stored a checksum of its own (AWS
/// stores a CRC64NVME of every new object), the same checksum of the file, read once more,
/// proves the object, or shows it wrong (then it is removed). Not with `--s3-checksum off`.
async fn stored_proves(
    ctx: &UploadCtx,
    entry: &LocalFile,
    file: &Arc<SourceFile>,
    part_size: u64,
) -> Result<Proof, UploadError> {
    if ctx.store.put.checksum == crate::read::checksum::ChecksumMode::Off {
        return Ok(Proof::NotComparable);
    }
    let head = ctx.store.head_checksums(&entry.rel).await?;
    let Some(stored) = head
        .checksums
        .iter()
        .find_map(|(alg, v)| crate::read::checksum::ObjectChecksum::parse(*alg, v))
    else {
        return Ok(Proof::NotComparable);
    };
    let composite = matches!(
        stored,
        crate::read::checksum::ObjectChecksum::Composite { .. }
    );
    let (f, alg) = (file.clone(), stored.algorithm());
    let (ours, _) = read::blocking(&entry.rel, move || {
        crate::transfer::verify::file_checksum(&f, alg, composite.then_some(part_size), false)
    })
    .await?;
    if ours == stored {
        return Ok(Proof::Checksum);
    }
    let _ = ctx.store.delete(&entry.rel).await;
    Err(UploadError::Integrity {
        path: entry.rel.clone(),
        message: format!("the server stored checksum {stored}, but the file's is {ours}"),
    })
}

/// The multipart upload a file's parts go to.
struct Opened {
    session: Session,
    /// Parts already there, by number (an upload resumed).
    existing: HashMap<u32, PartInfo>,
    /// The other interrupted uploads of the key, to abort once the object is complete.
    stale: Vec<String>,
    resumed: bool,
}

/// The multipart upload a file's parts go to: an interrupted one to resume (found among those
/// listed before the run, with its parts already there), or a new one.
async fn session(
    ctx: &UploadCtx,
    entry: &LocalFile,
    plan: &PartPlan,
    allow_resume: bool,
) -> Result<Opened, UploadError> {
    let (resume, stale) = if allow_resume {
        find_resumable(&ctx.store, ctx.pending.get(), &entry.rel, plan).await
    } else {
        (None, Vec::new())
    };
    let resumed = resume.is_some();
    let (session, existing) = match resume {
        Some(Resumable {
            upload_id,
            parts,
            checksum,
        }) => {
            tracing::info!(
                "{}: resuming interrupted upload ({} parts already there)",
                entry.rel,
                parts.len()
            );
            let s = Session::adopt(
                ctx.store.clone(),
                ctx.stats.clone(),
                ctx.retry,
                &entry.rel,
                upload_id,
                checksum,
            );
            (s, parts)
        }
        None => {
            let s = Session::create(
                ctx.store.clone(),
                ctx.stats.clone(),
                ctx.retry,
                &entry.rel,
                &ObjectMeta::file(entry.mtime),
                plan.part_size,
                ctx.store.put.checksum(),
            )
            .await?;
            (s, HashMap::new())
        }
    };
    Ok(Opened {
        session,
        existing,
        stale,
        resumed,
    })
}

/// Registry mode: a blob's SHA-256, taken from its parts as they were read, must be the
/// digest its key names.
fn blob_hashes_to(
    rel: &str,
    sha: &InOrderSha,
    expected: &str,
    parts: u64,
) -> Result<(), UploadError> {
    match sha.finish(parts) {
        Some(actual) if actual == expected => Ok(()),
        Some(actual) => Err(UploadError::Registry {
            path: rel.to_string(),
            message: corrupt_blob(expected, &actual),
        }),
        None => Err(UploadError::Internal {
            path: rel.to_string(),
            message: "not every part was hashed".into(),
        }),
    }
}

/// Whether the completed object's metadata is this version's; `headed` is a HEAD already made
/// of it, if any.
async fn metadata_matches(
    ctx: &UploadCtx,
    entry: &LocalFile,
    part_size: u64,
    headed: Option<Head>,
) -> Result<bool, UploadError> {
    let head = match headed {
        Some(h) => h,
        None => ctx.store.head(&entry.rel, None).await?,
    };
    Ok(
        s3::recorded_mtime(&head.metadata) == Some(s3::format_mtime(entry.mtime).as_str())
            && s3::recorded_part_size(&head.metadata) == Some(part_size),
    )
}

/// Every part's MD5 and checksum (with its length), its ETag, and the bytes reused.
type PartsDone = (
    Vec<Md5Digest>,
    Vec<Option<(Checksum, u64)>>,
    Vec<String>,
    u64,
);

/// What [`send_parts`] uploads.
struct Parts<'a> {
    plan: &'a PartPlan,
    file: &'a Arc<SourceFile>,
    session: &'a Arc<Session>,
    /// Parts of an interrupted upload, by number.
    existing: Arc<HashMap<u32, PartInfo>>,
    /// Registry blobs: the SHA-256 computed from the parts as they are read.
    sha: Option<Arc<crate::read::sha::InOrderSha>>,
}

/// Read, hash and (unless already there) upload every part; parts run in parallel.
///
/// Parts go a group at a time (as many as may upload at once): a group's parts are read
/// together and hashed as one batch, in SIMD lanes, while the group before it is still
/// uploading. One part at a time, each read would start when an upload finished and be
/// hashed alone, at a quarter of the speed or less. At most two groups are out at once.
async fn send_parts(
    ctx: &Arc<UploadCtx>,
    entry: &LocalFile,
    parts: Parts<'_>,
) -> Result<PartsDone, UploadError> {
    let Parts {
        plan,
        file,
        session,
        existing,
        sha,
    } = parts;
    let n = plan.count as usize;
    let mut md5s = vec![[0u8; 16]; n];
    let mut sums = vec![None; n];
    let mut etags = vec![String::new(); n];
    let mut reused = 0u64;
    // Two groups out at once: one uploading while the next is read and hashed.
    let part = plan.range(0).1;
    let per_group = ctx
        .budget
        .group_of(part, ctx.limits.parts_per_file, plan.count, 2);
    let uploading = Arc::new(Semaphore::new(ctx.limits.parts_per_file.max(1)));
    let mut tasks = JoinSet::new();
    let mut next = 0u64;
    let mut first_error: Option<UploadError> = None;
    loop {
        while first_error.is_none() && next < plan.count && tasks.len() < 2 {
            let numbers = next..(next + per_group).min(plan.count);
            next = numbers.end;
            let group = Group {
                ctx: ctx.clone(),
                rel: entry.rel.clone(),
                file: file.clone(),
                session: session.clone(),
                parts: numbers.map(|i| (i as u32 + 1, plan.range(i))).collect(),
                existing: existing.clone(),
                sha: sha.clone(),
                uploading: uploading.clone(),
            };
            tasks.spawn(group.send());
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(done)) => {
                for (number, len, md5, sum, etag, was_reused) in done {
                    md5s[number as usize - 1] = md5;
                    sums[number as usize - 1] = sum.map(|s| (s, len));
                    etags[number as usize - 1] = etag;
                    if was_reused {
                        reused += len;
                    }
                }
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(UploadError::Internal {
                    path: entry.rel.clone(),
                    message: e.to_string(),
                });
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok((md5s, sums, etags, reused))
}

/// One group of parts of a file: read and hashed together, then uploaded.
struct Group {
    ctx: Arc<UploadCtx>,
    rel: String,
    file: Arc<SourceFile>,
    session: Arc<Session>,
    /// Part number, and its (offset, length) in the file.
    parts: Vec<(u32, (u64, u64))>,
    existing: Arc<HashMap<u32, PartInfo>>,
    sha: Option<Arc<crate::read::sha::InOrderSha>>,
    /// The file's uploads at once (`--s3-upload-concurrency`), shared by its groups.
    uploading: Arc<Semaphore>,
}

/// A part done: number, length, MD5, checksum, ETag, and whether the interrupted upload had it.
type PartDone = (u32, u64, Md5Digest, Option<Checksum>, String, bool);

impl Group {
    async fn send(self) -> Result<Vec<PartDone>, UploadError> {
        let ctx = &self.ctx;
        let lens: Vec<u64> = self.parts.iter().map(|&(_, (_, len))| len).collect();
        let bufs = ctx.budget.buffers(&lens).await;
        let _flight: Vec<_> = self.parts.iter().map(|_| ctx.stats.start_one()).collect();
        let ranges = self
            .parts
            .iter()
            .zip(bufs)
            .map(|(&(_, (offset, _)), buf)| (offset, buf))
            .collect();
        let read = ctx
            .io
            .read_ranges(&self.rel, &self.file, ranges, self.session.checksum)
            .await?;
        let this = &self;
        let sends =
            self.parts
                .iter()
                .zip(read)
                .map(|(&(number, (_, len)), (data, md5, sum))| async move {
                    // The SHA-256 of a registry blob is hashed on a blocking thread while the
                    // part is sent; the part is done when both are.
                    let hashing = this.sha.clone().map(|sha| {
                        let d = data.clone();
                        tokio::task::spawn_blocking(move || sha.offer(number as u64 - 1, d))
                    });
                    let sent = {
                        let _slot = this
                            .uploading
                            .acquire()
                            .await
                            .expect("the upload slots are never closed");
                        this.session
                            .send(number, data, md5, sum.as_ref(), this.existing.get(&number))
                            .await
                    };
                    if let Some(h) = hashing {
                        h.await.map_err(|e| UploadError::Internal {
                            path: this.rel.clone(),
                            message: e.to_string(),
                        })?;
                    }
                    let (etag, was_reused) = sent?;
                    Ok::<_, UploadError>((number, len, md5, sum, etag, was_reused))
                });
        futures::future::try_join_all(sends).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::etag::MIB;
    use std::time::SystemTime;

    fn part(number: u32, size: u64) -> PartInfo {
        PartInfo {
            number,
            size,
            etag: String::new(),
        }
    }
    fn upload_info(id: &str, secs: u64) -> UploadInfo {
        UploadInfo {
            key: "k".into(),
            upload_id: id.into(),
            initiated: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)),
            checksum: None,
        }
    }

    #[test]
    fn adoption_rules() {
        let plan = PartPlan::with_part_size(12 * MIB, 5 * MIB); // 5 + 5 + 2
        assert!(adoptable(&plan, &[part(1, 5 * MIB), part(3, 2 * MIB)]));
        assert!(!adoptable(&plan, &[part(1, 8 * MIB)]), "other part size");
        assert!(
            !adoptable(&plan, &[part(4, 5 * MIB)]),
            "beyond our part count"
        );
        assert!(
            !adoptable(&plan, &[part(3, 5 * MIB)]),
            "last part length differs"
        );
        let candidates = vec![
            (upload_info("old", 1), vec![part(1, 5 * MIB)]),
            (
                upload_info("foreign", 2),
                vec![part(1, 8 * MIB), part(2, 4 * MIB)],
            ),
            (
                upload_info("best", 3),
                vec![part(1, 5 * MIB), part(2, 5 * MIB)],
            ),
            (upload_info("empty", 4), vec![]),
        ];
        assert_eq!(choose_resumable(&plan, &candidates), Some(2));
        assert_eq!(choose_resumable(&plan, &candidates[3..]), None);
    }
}
