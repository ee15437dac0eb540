//! S3 → S3: copy one object from a source bucket into a destination bucket, proven.
//!
//! On one endpoint with one set of credentials the server copies: CopyObject up to 5 GiB,
//! UploadPartCopy in the source's own part layout above that or where the server's
//! CopyObject does not keep a multipart object's ETag, so the copy's ETag is the source's and
//! equality is the proof (no byte passes through us).
//!
//! Across endpoints the bytes pass through us: ranged GETs of the source's parts, each pinned
//! to the listed ETag, into buffers from the memory budget; each part hashed once; sent with
//! Content-MD5 (one PUT, or a multipart [`Session`] in the source's part layout); every ETag
//! the destination returns checked against our MD5; and the MD5s checked against the source's
//! ETag before the object is completed, so bytes that do not match the source never become an
//! object. A source whose ETag is not an MD5 (SSE-KMS, a gateway's own) is proven on the
//! destination's side only, and reported so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use md5::Digest;
use serde::Serialize;
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::config::limits::Limits;
use crate::config::registry::{BlobSet, Layout};
use crate::march::list::ListedObject;
use crate::read::Budget;
use crate::read::checksum::Checksum;
use crate::read::etag::{ETag, GIB, Md5Digest, PartPlan};
use crate::report::Stats;
use crate::s3::{Head, ObjectMeta, Store, UploadInfo, Written};
use crate::transfer::download::{self, DownloadError};
use crate::transfer::multipart::UploadError;
use crate::transfer::multipart::{self, Retry, Session};

/// The largest object one CopyObject may copy.
pub const COPY_OBJECT_MAX: u64 = 5 * GIB;

/// What copies between two buckets need from their run.
#[derive(Clone)]
pub struct Relay {
    pub src: Arc<Store>,
    pub dst: Arc<Store>,
    /// Both buckets are on one endpoint with one set of credentials: the server copies.
    pub server_side: bool,
    pub budget: Budget,
    pub limits: Limits,
    pub stats: Arc<Stats>,
    pub retry: Retry,
    /// In-progress multipart uploads under the destination's prefix, by key: listed once,
    /// when the first multipart copy starts, to resume interrupted copies from.
    pub pending: Arc<tokio::sync::OnceCell<HashMap<String, Vec<UploadInfo>>>>,
    /// Registry mode: the layout, and the blobs the destination holds (listed, or copied by
    /// this run), which a link must point to.
    pub registry: Option<(Layout, Arc<Mutex<BlobSet>>)>,
    /// Whether this server's CopyObject keeps a multipart object's ETag: not known yet,
    /// [`COPY_KEEPS_ETAG`] or [`COPY_CHANGES_ETAG`], from the first multipart copy of the run.
    pub copy_keeps_parts: Arc<AtomicU8>,
}

/// CopyObject of a multipart object keeps its ETag (Ceph RGW).
pub const COPY_KEEPS_ETAG: u8 = 1;
/// CopyObject of a multipart object makes a single-part object (AWS S3).
pub const COPY_CHANGES_ETAG: u8 = 2;

/// What a streamed object must be besides its ETag's bytes (registry mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Nothing,
    /// A blob: its bytes hash to this SHA-256 (hex).
    Blob(String),
    /// A link: valid (naming the digest its path names, if any), to a blob the destination
    /// holds.
    Link(Option<String>),
}

fn registry_error(rel: &str, message: String) -> UploadError {
    UploadError::Registry {
        path: rel.to_string(),
        message,
    }
}

/// Check a whole object's bytes against what registry mode expects of it.
async fn check_expected(
    r: &Relay,
    rel: &str,
    data: &bytes::Bytes,
    expect: &Expect,
) -> Result<(), UploadError> {
    match expect {
        Expect::Nothing => Ok(()),
        Expect::Blob(digest) => {
            let d = data.clone();
            let actual = tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&d)))
                .await
                .map_err(|e| UploadError::Internal {
                    path: rel.to_string(),
                    message: e.to_string(),
                })?;
            if &actual != digest {
                return Err(registry_error(rel, corrupt(digest, &actual)));
            }
            Ok(())
        }
        Expect::Link(path_digest) => {
            let target = crate::config::registry::parse_link(data, path_digest.as_deref())
                .map_err(|e| registry_error(rel, format!("invalid link: {e}; not copied")))?;
            let Some((layout, known)) = &r.registry else {
                return Ok(());
            };
            if known.lock().expect("known blobs").contains(&target) {
                return Ok(());
            }
            if r.dst.exists(&layout.blob_path(&target)).await? {
                return Ok(());
            }
            Err(registry_error(
                rel,
                format!(
                    "link to sha256:{target}, which the destination does not hold: not copying a dangling link"
                ),
            ))
        }
    }
}

fn corrupt(expected: &str, actual: &str) -> String {
    format!(
        "corrupt blob: its key says sha256:{expected} but its content hashes to sha256:{actual}; not copied"
    )
}

/// Parts of an interrupted copy of one object, by number: the MD5 its ETag names, and the
/// ETag.
type Kept = HashMap<u32, (Md5Digest, String)>;

/// How a multipart copy starts: a fresh upload, or one an interrupted run left, with the parts
/// it holds that fit the plan (their ETags are MD5s of the right lengths; comparing the
/// completed object's ETag with the source's proves them). `stale`: the key's other uploads,
/// aborted once the copy is complete.
async fn start(
    r: &Relay,
    obj: &ListedObject,
    plan: &PartPlan,
    meta: &ObjectMeta,
    resume: bool,
) -> Result<(Session, Kept, Vec<String>), UploadError> {
    let rel = &obj.rel;
    let (chosen, stale) = if resume {
        // A server that cannot list them (or refuses to) has nothing to resume.
        let pending = r
            .pending
            .get_or_init(|| async {
                crate::transfer::upload::pending_uploads(&r.dst)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::info!("cannot list interrupted uploads ({e}): copies restart");
                        HashMap::new()
                    })
            })
            .await;
        crate::transfer::upload::find_resumable(&r.dst, Some(pending), rel, plan).await
    } else {
        (None, Vec::new())
    };
    if let Some(crate::transfer::upload::Resumable {
        upload_id: id,
        parts,
        ..
    }) = chosen
    {
        let kept: Kept = parts
            .into_iter()
            .filter_map(|(n, p)| match ETag::parse(&p.etag) {
                ETag::Md5(d) if p.size == plan.range(n as u64 - 1).1 => Some((n, (d, p.etag))),
                _ => None,
            })
            .collect();
        if !kept.is_empty() {
            tracing::info!(
                "{rel}: resuming an interrupted copy ({} of {} parts already there)",
                kept.len(),
                plan.count
            );
            let reused: u64 = kept.keys().map(|&n| plan.range(n as u64 - 1).1).sum();
            r.stats.reused(reused);
            let s = Session::adopt(r.dst.clone(), r.stats.clone(), r.retry, rel, id, None);
            return Ok((s, kept, stale));
        }
    }
    let s = Session::create(
        r.dst.clone(),
        r.stats.clone(),
        r.retry,
        rel,
        meta,
        plan.part_size,
        r.dst.put.checksum(),
    )
    .await?;
    Ok((s, Kept::new(), stale))
}

/// After a resumed copy completed: abort the key's other uploads, and whether the object
/// carries this source version's mtime (an adopted upload records the mtime of the version
/// it was started for). `headed`: a HEAD of the object already made, if any.
async fn finish_resumed(
    r: &Relay,
    rel: &str,
    stale: Vec<String>,
    resumed: bool,
    meta: &ObjectMeta,
    headed: Option<Head>,
) -> Result<bool, UploadError> {
    for id in stale {
        let _ = r.dst.abort_multipart(&r.dst.key(rel), &id).await;
    }
    if !resumed {
        return Ok(true);
    }
    let head = match headed {
        Some(h) => h,
        None => r.dst.head(rel, None).await?,
    };
    Ok(crate::s3::recorded_mtime(&head.metadata)
        == Some(crate::s3::format_mtime(meta.mtime).as_str()))
}

/// How a copy was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Proof {
    /// The server copied, and the copy's ETag is the source's.
    ServerCopy,
    /// The bytes passed through us: their MD5s are the source's ETag and the destination's.
    Streamed,
    /// The destination holds what we read, or what the server copied, but the source's ETag
    /// is not an MD5 (or not in the copy's format): against the source, sizes only.
    SourceNotComparable,
}

fn from_download(e: DownloadError) -> UploadError {
    match e {
        DownloadError::S3(e) => UploadError::S3(e),
        e => UploadError::Download(Arc::new(e)),
    }
}

/// Copy `obj` (listed in the source) to the same key in the destination.
///
/// `expect` (registry mode) is checked on the bytes of streamed copies; a server-side copy
/// never sees them.
pub async fn relay(r: &Relay, obj: &ListedObject, expect: &Expect) -> Result<Proof, UploadError> {
    let _flight = r.stats.start_one();
    let obj = &download::with_listed_etag(&r.src, obj).await?;
    let etag = ETag::parse(&obj.etag);
    let head = download::layout_head(&r.src, &obj.rel, &etag).await?;
    let layout = download::known_part_size(&etag, obj.size, head.as_ref());
    if r.server_side {
        server_copy(r, obj, &etag, head, layout, true).await
    } else {
        streamed(r, obj, &etag, head, layout, true, expect).await
    }
}

/// The source's metadata: from the HEAD already made when it has them (a HEAD with
/// `partNumber` may leave them out, as moto's does), else from a plain HEAD.
async fn meta_head(
    r: &Relay,
    obj: &ListedObject,
    head: Option<(Head, bool)>,
) -> Result<Head, UploadError> {
    Ok(match head {
        Some((h, part_one)) if !part_one || !h.metadata.is_empty() => h,
        _ => r.src.head(&obj.rel, None).await?,
    })
}

fn meta_of(h: &Head, obj: &ListedObject) -> ObjectMeta {
    ObjectMeta::of_object(h, download::object_mtime([h], obj.last_modified))
}

/// A copy's ETag against the source's: equal proves it; two of one kind that differ are a
/// failed copy (the object is deleted, so no later run keeps it); anything else cannot be
/// compared.
async fn same_etag(
    r: &Relay,
    obj: &ListedObject,
    etag: &ETag,
    w: &Written,
) -> Result<Proof, UploadError> {
    let got = ETag::parse(&w.etag);
    if w.etag_not_md5 || matches!(etag, ETag::Opaque(_)) || matches!(got, ETag::Opaque(_)) {
        return Ok(Proof::SourceNotComparable);
    }
    if &got == etag {
        return Ok(Proof::ServerCopy);
    }
    if std::mem::discriminant(&got) == std::mem::discriminant(etag) {
        let _ = r.dst.delete(&obj.rel).await;
        return Err(UploadError::Integrity {
            path: obj.rel.clone(),
            message: format!(
                "the copy's ETag {got} is not the source's {etag}: the copy was deleted; rerun"
            ),
        });
    }
    Ok(Proof::SourceNotComparable)
}

async fn server_copy(
    r: &Relay,
    obj: &ListedObject,
    etag: &ETag,
    head: Option<(Head, bool)>,
    layout: Option<u64>,
    resume: bool,
) -> Result<Proof, UploadError> {
    let rel = &obj.rel;
    // A multipart object whose layout is known can be copied part by part in that layout, so
    // the copy's ETag is the source's. CopyObject is tried first, though: some servers (Ceph
    // RGW) keep the source's ETag and share its data instead of copying it, which is far
    // cheaper; where the first such copy comes back with a single-part ETag (AWS S3), this
    // object and every later one are copied part by part.
    let in_layout = match (etag, layout) {
        (ETag::Multipart { .. }, Some(p)) => Some(PartPlan::with_part_size(obj.size, p)),
        _ => None,
    };
    let keeps = r.copy_keeps_parts.load(Ordering::Relaxed);
    if obj.size <= COPY_OBJECT_MAX && (in_layout.is_none() || keeps != COPY_CHANGES_ETAG) {
        let w = r
            .dst
            .copy_object(rel, &r.src, rel, &obj.etag, obj.size)
            .await?;
        let (w, _) = multipart::with_etag(&r.dst, rel, w).await?;
        let got = ETag::parse(&w.etag);
        if in_layout.is_some() && !w.etag_not_md5 {
            if &got == etag {
                r.copy_keeps_parts.store(COPY_KEEPS_ETAG, Ordering::Relaxed);
            } else if matches!(got, ETag::Md5(_)) {
                r.copy_keeps_parts
                    .store(COPY_CHANGES_ETAG, Ordering::Relaxed);
                tracing::info!(
                    "{rel}: this server's CopyObject makes a single-part copy of a multipart object; copying part by part instead, so that copies can be proven"
                );
                return Box::pin(server_copy(r, obj, etag, head, layout, resume)).await;
            }
        }
        r.stats.skipped(obj.size);
        return same_etag(r, obj, etag, &w).await;
    }
    let plan =
        match in_layout {
            Some(p) => p,
            None => PartPlan::new(obj.size, r.limits.chunk_size, r.limits.max_parts).map_err(
                |source| UploadError::Parts {
                    path: rel.clone(),
                    source,
                },
            )?,
        };
    let h = meta_head(r, obj, head.clone()).await?;
    let meta = meta_of(&h, obj);
    let (session, kept, stale) = start(r, obj, &plan, &meta, resume).await?;
    let todo: Vec<u64> = (0..plan.count)
        .filter(|i| !kept.contains_key(&(*i as u32 + 1)))
        .collect();
    let copies = todo.into_iter().map(|i| {
        let (off, len) = plan.range(i);
        let session = &session;
        async move {
            let etag = r
                .dst
                .upload_part_copy(
                    rel,
                    &session.upload_id,
                    i as u32 + 1,
                    &r.src,
                    rel,
                    (off, off + len),
                    &obj.etag,
                )
                .await?;
            r.stats.skipped(len);
            Ok::<_, UploadError>((i as u32 + 1, etag))
        }
    });
    let copied = futures::stream::iter(copies)
        .buffered(r.limits.parts_per_file.max(1))
        .try_collect::<Vec<(u32, String)>>()
        .await;
    let mut etags: Vec<String> = (1..=plan.count as u32)
        .map(|n| kept.get(&n).map(|(_, e)| e.clone()).unwrap_or_default())
        .collect();
    match copied {
        Ok(c) => {
            for (n, e) in c {
                etags[n as usize - 1] = e;
            }
        }
        Err(e) => {
            session.end_after(&e).await;
            return Err(e);
        }
    }
    let (w, headed) = session.finish(etags).await?;
    let proof = same_etag(r, obj, etag, &w).await?;
    if !finish_resumed(r, rel, stale, !kept.is_empty(), &meta, headed).await? {
        tracing::info!("{rel}: the resumed copy carried another version's metadata; copying again");
        return Box::pin(server_copy(r, obj, etag, head, layout, false)).await;
    }
    Ok(proof)
}

/// How a streamed copy is cut.
enum Shape {
    /// One GET, one PUT.
    Single,
    /// Parts; `whole_md5`: the source is one part (its ETag the MD5 of all its bytes), too
    /// big for one PUT, so that MD5 is computed too, in order, to prove the source.
    Parts { plan: PartPlan, whole_md5: bool },
}

fn shape(
    r: &Relay,
    obj: &ListedObject,
    etag: &ETag,
    layout: Option<u64>,
) -> Result<Shape, UploadError> {
    let ours = || {
        PartPlan::new(obj.size, r.limits.chunk_size, r.limits.max_parts).map_err(|source| {
            UploadError::Parts {
                path: obj.rel.clone(),
                source,
            }
        })
    };
    Ok(match (etag, layout) {
        // The source's own layout, so the copy's ETag is the source's.
        (ETag::Multipart { .. }, Some(p)) if p <= r.limits.buffer_memory => Shape::Parts {
            plan: PartPlan::with_part_size(obj.size, p),
            whole_md5: false,
        },
        _ if obj.size < r.limits.upload_cutoff => Shape::Single,
        (ETag::Md5(_), _) => Shape::Parts {
            plan: ours()?,
            whole_md5: true,
        },
        _ => Shape::Parts {
            plan: ours()?,
            whole_md5: false,
        },
    })
}

fn not_the_source(obj: &ListedObject, got: &ETag) -> UploadError {
    UploadError::Integrity {
        path: obj.rel.clone(),
        message: format!(
            "the bytes read hash to {got}, not the source's ETag {}: nothing was written; rerun",
            obj.etag
        ),
    }
}

async fn streamed(
    r: &Relay,
    obj: &ListedObject,
    etag: &ETag,
    head: Option<(Head, bool)>,
    layout: Option<u64>,
    resume: bool,
    expect: &Expect,
) -> Result<Proof, UploadError> {
    let rel = &obj.rel;
    let (plan, whole_md5) = match shape(r, obj, etag, layout)? {
        Shape::Single => {
            let buf = r.budget.buffer(obj.size).await;
            let (buf, h) = download::get_into(&r.src, None, rel, &obj.etag, (0, obj.size), buf)
                .await
                .map_err(from_download)?;
            // The destination's checksum, if any, from the same pass as the MD5.
            let (data, md5, sum) = crate::read::hasher::hash(buf, r.dst.put.checksum()).await;
            check_expected(r, rel, &data, expect).await?;
            let compared = !h.etag_not_md5 && matches!(etag, ETag::Md5(_));
            if compared && etag != &ETag::Md5(md5) {
                return Err(not_the_source(obj, &ETag::Md5(md5)));
            }
            multipart::put_proven(
                &r.dst,
                &r.stats,
                r.retry,
                rel,
                data,
                md5,
                sum,
                &meta_of(&h, obj),
            )
            .await?;
            return Ok(if compared {
                Proof::Streamed
            } else {
                Proof::SourceNotComparable
            });
        }
        Shape::Parts { plan, whole_md5 } => (plan, whole_md5),
    };
    let h = meta_head(r, obj, head.clone()).await?;
    let meta = meta_of(&h, obj);
    // Resuming needs no read of the parts kept: the completed object's ETag, compared with the
    // source's, proves them. Not so for a whole-object MD5, which needs every byte.
    // A blob's SHA-256 needs every byte too.
    let blob = match expect {
        Expect::Blob(d) => Some(d.clone()),
        _ => None,
    };
    // Nor for the destination's checksum, whose parts must all be read to be sent.
    let resume = resume && !whole_md5 && blob.is_none() && r.dst.put.checksum().is_none();
    let (session, kept, stale) = start(r, obj, &plan, &meta, resume).await?;
    let session = Arc::new(session);
    let resumed = !kept.is_empty();
    let sha = blob
        .as_ref()
        .map(|_| Arc::new(crate::read::sha::InOrderSha::new()));
    let result = stream_parts(r, obj, &plan, &session, whole_md5, kept, sha.clone()).await;
    let result = match (result, sha, &blob) {
        (Ok(v), Some(sha), Some(expected)) => match sha.finish(plan.count) {
            Some(actual) if &actual == expected => Ok(v),
            Some(actual) => Err(registry_error(rel, corrupt(expected, &actual))),
            None => Err(UploadError::Internal {
                path: rel.clone(),
                message: "not every part was hashed".into(),
            }),
        },
        (r, ..) => r,
    };
    let (md5s, sums, etags, whole) = match result {
        Ok(v) => v,
        Err(e) => {
            session.end_after(&e).await;
            return Err(e);
        }
    };
    // The source's ETag, from what we read: checked before the object exists.
    let read = match whole {
        Some(d) => ETag::Md5(d),
        None => ETag::composite(&md5s),
    };
    let compared = !h.etag_not_md5 && !matches!(etag, ETag::Opaque(_)) && layout_kept(etag, &read);
    if compared && &read != etag {
        session.abort().await;
        return Err(not_the_source(obj, &read));
    }
    let sums: Option<Vec<(Checksum, u64)>> = sums.into_iter().collect();
    let (_, _, headed) = session.complete(etags, &md5s, sums.as_deref()).await?;
    if !finish_resumed(r, rel, stale, resumed, &meta, headed).await? {
        tracing::info!("{rel}: the resumed copy carried another version's metadata; copying again");
        return Box::pin(streamed(r, obj, etag, head, layout, false, expect)).await;
    }
    Ok(if compared {
        Proof::Streamed
    } else {
        Proof::SourceNotComparable
    })
}

/// Whether what we computed is in the source ETag's form (the same part count, or one MD5).
fn layout_kept(etag: &ETag, read: &ETag) -> bool {
    match (etag, read) {
        (ETag::Md5(_), ETag::Md5(_)) => true,
        (ETag::Multipart { parts: a, .. }, ETag::Multipart { parts: b, .. }) => a == b,
        _ => false,
    }
}

/// Every part's MD5, checksum (with its length) and ETag, and the whole object's MD5.
type Streamed = (
    Vec<Md5Digest>,
    Vec<Option<(Checksum, u64)>>,
    Vec<String>,
    Option<Md5Digest>,
);

/// Parts sent: number, MD5, checksum, the destination's ETag.
type Sent = Vec<(u32, Md5Digest, Option<Checksum>, String)>;

/// GET, hash and send every part, a group at a time; two groups out at once (one sending
/// while the next is fetched), one when the whole object's MD5 is needed, since it is
/// computed in order.
async fn stream_parts(
    r: &Relay,
    obj: &ListedObject,
    plan: &PartPlan,
    session: &Arc<Session>,
    whole_md5: bool,
    kept: Kept,
    sha: Option<Arc<crate::read::sha::InOrderSha>>,
) -> Result<Streamed, UploadError> {
    let n = plan.count as usize;
    let (mut md5s, mut etags) = (vec![[0u8; 16]; n], vec![String::new(); n]);
    let mut sums = vec![None; n];
    for (&number, (md5, etag)) in &kept {
        md5s[number as usize - 1] = *md5;
        etags[number as usize - 1] = etag.clone();
    }
    let todo: Vec<u64> = (0..plan.count)
        .filter(|i| !kept.contains_key(&(*i as u32 + 1)))
        .collect();
    let out = if whole_md5 { 1 } else { 2 };
    let per_group = r
        .budget
        .group_of(plan.part_size, r.limits.parts_per_file, plan.count, out);
    let whole = whole_md5.then(|| Arc::new(std::sync::Mutex::new(md5::Md5::new())));
    let mut tasks: JoinSet<Result<Sent, UploadError>> = JoinSet::new();
    let mut groups = todo.chunks(per_group.max(1) as usize);
    let mut first_error = None;
    loop {
        while first_error.is_none() && tasks.len() < out {
            let Some(group) = groups.next() else {
                break;
            };
            let parts: Vec<(u32, (u64, u64))> = group
                .iter()
                .map(|&i| (i as u32 + 1, plan.range(i)))
                .collect();
            let (r, obj, session) = (r.clone(), obj.clone(), session.clone());
            let (whole, sha) = (whole.clone(), sha.clone());
            tasks.spawn(async move { stream_group(&r, &obj, &session, parts, whole, sha).await });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(done)) => {
                for (number, md5, sum, etag) in done {
                    let i = number as usize - 1;
                    sums[i] = sum.map(|s| (s, plan.range(i as u64).1));
                    md5s[number as usize - 1] = md5;
                    etags[number as usize - 1] = etag;
                }
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(UploadError::Internal {
                    path: obj.rel.clone(),
                    message: e.to_string(),
                });
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let whole = whole.map(|w| {
        let h = std::mem::take(&mut *w.lock().expect("whole md5"));
        h.finalize().into()
    });
    Ok((md5s, sums, etags, whole))
}

async fn stream_group(
    r: &Relay,
    obj: &ListedObject,
    session: &Session,
    parts: Vec<(u32, (u64, u64))>,
    whole: Option<Arc<std::sync::Mutex<md5::Md5>>>,
    sha: Option<Arc<crate::read::sha::InOrderSha>>,
) -> Result<Sent, UploadError> {
    let lens: Vec<u64> = parts.iter().map(|(_, (_, len))| *len).collect();
    let bufs = r.budget.buffers(&lens).await;
    let gets = parts.iter().zip(bufs).map(|(&(_, range), buf)| {
        download::get_into(&r.src, None, &obj.rel, &obj.etag, range, buf)
    });
    let filled: Vec<_> = futures::future::try_join_all(gets)
        .await
        .map_err(from_download)?
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let hashed = crate::read::hasher::hash_all(filled, session.checksum).await;
    if let Some(w) = whole {
        let data: Vec<bytes::Bytes> = hashed.iter().map(|(d, _, _)| d.clone()).collect();
        tokio::task::spawn_blocking(move || {
            let mut h = w.lock().expect("whole md5");
            for d in &data {
                h.update(d);
            }
        })
        .await
        .map_err(|e| UploadError::Internal {
            path: obj.rel.clone(),
            message: e.to_string(),
        })?;
    }
    if let Some(sha) = sha {
        let data: Vec<(u64, bytes::Bytes)> = parts
            .iter()
            .zip(&hashed)
            .map(|(&(n, _), (d, _, _))| (n as u64 - 1, d.clone()))
            .collect();
        tokio::task::spawn_blocking(move || {
            for (i, d) in data {
                sha.offer(i, d);
            }
        })
        .await
        .map_err(|e| UploadError::Internal {
            path: obj.rel.clone(),
            message: e.to_string(),
        })?;
    }
    let sends = parts
        .iter()
        .zip(hashed)
        .map(|(&(number, _), (data, md5, sum))| async move {
            let (etag, _) = session.send(number, data, md5, sum.as_ref(), None).await?;
            Ok::<_, UploadError>((number, md5, sum, etag))
        });
    futures::future::try_join_all(sends).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_compare_only_in_one_form() {
        let a = ETag::composite(&[[1; 16], [2; 16]]);
        let b = ETag::composite(&[[1; 16], [2; 16], [3; 16]]);
        assert!(layout_kept(&a, &a));
        assert!(!layout_kept(&a, &b));
        assert!(layout_kept(&ETag::Md5([0; 16]), &ETag::Md5([1; 16])));
        assert!(!layout_kept(&ETag::Md5([0; 16]), &a));
    }
}
