//! Stage: download, the mirror of [`crate::transfer::upload`] for restores (`REMOTE:BUCKET[/P]` → a
//! directory). Every key is first mapped to a path under the destination, or refused with its
//! reason ([`key`]); keys ending in `/` with no bytes are the "folders" that consoles create:
//! there is nothing to restore for them.
//!
//! A download is written beside its target under a hidden temporary name and renamed into
//! place only once proven, so the final name never holds a partial file: the parts are fetched
//! with ranged GETs (all of them pinned to the listed ETag, with `If-Match`), a group at a
//! time, hashed in SIMD lanes as they arrive when the object's part layout is known (our
//! recorded part size, or part 1's length from a HEAD), and the composite ETag (or the MD5 of
//! a single-part object) is recomputed from the bytes written; where the layout is not known,
//! the written file is hashed against the likely part sizes, as `check` does. Then fsync, the
//! mtime from the object's `mtime` metadata (rclone's) or its LastModified, rename, and fsync
//! of the directory.

use std::collections::HashMap;
use std::io::Write;

use futures::{FutureExt, StreamExt};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::limits::Limits;
use crate::march::list::ListedObject;
use crate::read::Budget;
use crate::read::checksum::ObjectChecksum;
use crate::read::etag::{ETag, Md5Digest, PartPlan};
use crate::read::sha::InOrderSha;
use crate::report::Stats;
use crate::s3::{self, Head, S3Error, Store};
use crate::transfer::confine::{self, Root};

mod error;
pub mod key;
mod partial;

pub use crate::march::walk::is_partial;
pub use crate::s3::parse_mtime;
pub use error::DownloadError;
use error::{fs, io};
pub use key::{KeyError, NAME_MAX, local_path};
use partial::{Ledger, PartialFile, Place, ledger_header, resumable};
pub use partial::{ledger_name, partial_name};

/// How a restored file was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The MD5 of the bytes written equals the single-part ETag.
    Md5,
    /// The composite of the parts' MD5s equals the multipart ETag.
    Composite,
    /// The ETag is not an MD5, and the S3 checksum the server stored equals that of the
    /// bytes written.
    Checksum,
    /// The ETag is not an MD5 (SSE-KMS, SSE-C, a server's own format) and the server stores
    /// no checksum: sizes only.
    Unproven,
}

/// What an object must be besides the bytes its ETag names (registry mode).
pub enum Expect {
    Nothing,
    /// A blob: its bytes hash to this SHA-256 (hex).
    Blob(String),
    /// A link: it holds a valid reference (to the digest its path names, if any) to a blob
    /// already in the directory, at the path (relative to the directory) `blob_rel` gives for
    /// a digest.
    Link {
        path_digest: Option<String>,
        blob_rel: BlobRel,
    },
}

/// Where a blob's file is, relative to the directory, given its digest.
pub type BlobRel = Box<dyn Fn(&str) -> String + Send + Sync>;

/// What a download needs from its run.
#[derive(Clone)]
pub struct Fetcher {
    pub store: Arc<Store>,
    pub budget: Budget,
    pub limits: Limits,
    pub stats: Arc<Stats>,
    /// `--direct-io auto`: large files are written past the page cache where the filesystem
    /// allows it.
    pub direct: bool,
}

/// The mtime an object carries: rclone's `mtime` metadata (seconds, a dot, nanoseconds) in
/// the first of `heads` that has it, or else its LastModified.
pub fn object_mtime<'a>(
    heads: impl IntoIterator<Item = &'a Head>,
    last_modified: SystemTime,
) -> SystemTime {
    heads
        .into_iter()
        .find_map(|h| s3::recorded_mtime(&h.metadata))
        .and_then(parse_mtime)
        .unwrap_or(last_modified)
}

/// The object's part size, when it can be known before any byte is read: the size we record,
/// or part 1's length (a HEAD with `partNumber=1`), whichever splits the object into the
/// ETag's part count; a single-part object is one part.
pub fn known_part_size(etag: &ETag, size: u64, head: Option<&(Head, bool)>) -> Option<u64> {
    match etag {
        ETag::Md5(_) => Some(size.max(1)),
        ETag::Multipart { parts, .. } => {
            let (head, part_one) = head?;
            let mut hints = Vec::new();
            if let Some(p) = s3::recorded_part_size(&head.metadata) {
                hints.push(p);
            }
            if *part_one {
                hints.push(head.content_length);
            }
            hints
                .into_iter()
                .find(|&p| crate::read::etag::fits(size, p, *parts))
        }
        ETag::Opaque(_) => None,
    }
}

/// The object as listed, with its ETag from a HEAD where the listing had none (s3s-fs lists
/// none): the version every GET is pinned to and the proof is made against.
pub async fn with_listed_etag(store: &Store, obj: &ListedObject) -> Result<ListedObject, S3Error> {
    if !obj.etag.trim_matches('"').is_empty() {
        return Ok(obj.clone());
    }
    let head = store.head(&obj.rel, None).await?;
    Ok(ListedObject {
        etag: head.etag,
        ..obj.clone()
    })
}

/// For a multipart object, the HEAD its part layout comes from (part 1's, and whether the
/// server took `partNumber`); `None` for any other.
pub async fn layout_head(
    store: &Store,
    rel: &str,
    etag: &ETag,
) -> Result<Option<(Head, bool)>, S3Error> {
    Ok(match etag {
        ETag::Multipart { .. } => Some(match store.head_part_one(rel).await? {
            Some(h) => (h, true),
            None => (store.head(rel, None).await?, false),
        }),
        _ => None,
    })
}

/// Restore `obj` (a listed object) to `target`, proven, with its mtime: one GET per part,
/// plus one HEAD for a multipart object. The directories on
/// the way are created. On failure nothing is left under the target's name, and the partial
/// file is removed.
///
/// `expect` (registry mode): what the object must be besides its ETag's bytes; one that is
/// not is never written under its name.
pub async fn restore(
    f: &Fetcher,
    root: &Arc<Root>,
    obj: &ListedObject,
    expect: &Expect,
) -> Result<Proof, DownloadError> {
    let (dir, name) = confine::split(&obj.rel);
    let place = {
        let (root, dir, key) = (root.clone(), dir.to_string(), obj.rel.clone());
        let shown = root.shown(&obj.rel);
        let dir = confined(&shown, move || Ok(root.dir(&dir, true, &key)?)).await?;
        Arc::new(Place::new(dir, name))
    };
    let r = fetch(f, root, obj, &place, expect).await;
    if r.is_err() {
        // A failure a rerun can get past keeps the parts proven so far, for that rerun to
        // resume from; any other failure, or one before any part was proven, removes the
        // partial file. So does a new version of the object: its parts are not these.
        let temporary = matches!(&r, Err(DownloadError::S3(e))
            if e.is_temporary() && !matches!(e, S3Error::Changed { .. }));
        let (p, key) = (place.clone(), obj.rel.clone());
        let _ = confined(&place.shown, move || {
            if !(temporary && p.ledger_has_parts(&key)) {
                p.clean();
            }
            Ok(())
        })
        .await;
    }
    r
}

async fn fetch(
    f: &Fetcher,
    root: &Arc<Root>,
    obj: &ListedObject,
    place: &Arc<Place>,
    expect: &Expect,
) -> Result<Proof, DownloadError> {
    let partial = place.shown.as_path();
    let obj = &with_listed_etag(&f.store, obj).await?;
    let layout = Layout::of(f, obj, expect).await?;
    let have = layout.resumable(f, place, obj).await?;
    let file = layout
        .partial_file(f, place, &obj.rel, !have.is_empty())
        .await?;
    let mut ledger = layout.ledger(place, &obj.rel, !have.is_empty()).await?;
    // A blob's SHA-256 streams over its parts in order; with parts from an earlier attempt,
    // it is taken from the finished file instead.
    let sha = if have.is_empty() {
        layout.blob_digest().map(|_| Arc::new(InOrderSha::new()))
    } else {
        None
    };
    let (md5s, mut first_get) = fetch_parts(
        f,
        obj,
        &layout,
        &have,
        &file,
        ledger.clone(),
        sha.clone(),
        partial,
    )
    .await?;
    // Every part came from an earlier attempt: the metadata and encryption come from a HEAD.
    if first_get.is_none()
        && layout
            .head
            .as_ref()
            .is_none_or(|(h, part_one)| *part_one && h.metadata.is_empty())
    {
        first_get = Some(f.store.head(&obj.rel, None).await?);
    }
    let heads = [layout.head.as_ref().map(|(h, _)| h), first_get.as_ref()];
    let not_md5 = heads.iter().flatten().any(|h| h.etag_not_md5);
    layout
        .prove_blob(&obj.rel, sha, !have.is_empty(), &file, partial)
        .await?;
    if let Expect::Link {
        path_digest,
        blob_rel,
    } = expect
    {
        prove_link(
            root,
            &obj.rel,
            obj.size,
            path_digest,
            blob_rel,
            &file,
            partial,
        )
        .await?;
    }
    let proof = if not_md5 || matches!(layout.etag, ETag::Opaque(_)) {
        prove_by_checksum(f, obj, &file, partial).await?
    } else {
        prove(obj, &layout.etag, &md5s, layout.hash_parts, &file, partial).await?
    };
    let mtime = object_mtime(heads.into_iter().flatten(), obj.last_modified);
    let had_ledger = ledger.take().is_some();
    install(place, &obj.rel, file, mtime, had_ledger).await?;
    Ok(proof)
}

/// How one object is fetched: in its own parts where they are known (each is then hashed as
/// it arrives and proven against the ETag), in chunks otherwise.
struct Layout {
    /// The listing's ETag: the version this restore is about; every GET is pinned to it.
    etag: ETag,
    /// What a HEAD said of a multipart object (and whether it was part 1's), if one was made.
    head: Option<(Head, bool)>,
    part: u64,
    plan: PartPlan,
    /// The parts are the object's own: each part's MD5 is part of the proof.
    hash_parts: bool,
    /// Registry mode: the digest a blob's key names.
    blob: Option<String>,
    /// What the ledger of an interrupted attempt must begin with to be this one's.
    header: String,
    /// Parts proven so far are recorded, for a rerun to resume from: only where each part's
    /// MD5 is part of the proof, and only for objects of more than one part (for the rest,
    /// mostly registry links, a ledger would be a file created and removed per object for
    /// nothing).
    resumable: bool,
}

impl Layout {
    async fn of(f: &Fetcher, obj: &ListedObject, expect: &Expect) -> Result<Layout, DownloadError> {
        let etag = ETag::parse(&obj.etag);
        // A multipart object's part layout comes from one HEAD (our recorded part size, or
        // part 1's length); a single-part object needs none: its metadata and encryption come
        // with the first GET. (A HEAD with partNumber may answer with the part's own ETag, as
        // moto does.)
        let head = layout_head(&f.store, &obj.rel, &etag).await?;
        let size = obj.size;
        let known = known_part_size(&etag, size, head.as_ref());
        let part = match known {
            Some(p) if p <= f.limits.buffer_memory => p,
            _ => f.limits.chunk_size,
        };
        let plan = PartPlan::with_part_size(size, part);
        let hash_parts = known == Some(part);
        Ok(Layout {
            etag,
            head,
            part,
            plan,
            hash_parts,
            blob: match expect {
                Expect::Blob(d) => Some(d.clone()),
                _ => None,
            },
            header: ledger_header(&obj.etag, size, part),
            resumable: hash_parts && plan.count > 1,
        })
    }

    fn blob_digest(&self) -> Option<&str> {
        self.blob.as_deref()
    }

    /// Parts an interrupted attempt already wrote and proved, with their MD5s.
    async fn resumable(
        &self,
        f: &Fetcher,
        place: &Arc<Place>,
        obj: &ListedObject,
    ) -> Result<HashMap<u64, Md5Digest>, DownloadError> {
        if !self.resumable {
            return Ok(Default::default());
        }
        let (p, k, h, pl, size) = (
            place.clone(),
            obj.rel.clone(),
            self.header.clone(),
            self.plan,
            obj.size,
        );
        let have = blocking(place.shown.as_path(), move || {
            Ok(resumable(&p, &k, &h, &pl, size))
        })
        .await?;
        if !have.is_empty() {
            tracing::info!(
                "{}: resuming an interrupted download ({} of {} parts already there)",
                obj.rel,
                have.len(),
                self.plan.count
            );
            let reused: u64 = have.keys().map(|&i| self.plan.range(i).1).sum();
            f.stats.reused(reused);
        }
        Ok(have)
    }

    /// The partial file the parts are written into (kept, when parts are resumed).
    async fn partial_file(
        &self,
        f: &Fetcher,
        place: &Arc<Place>,
        rel: &str,
        keep: bool,
    ) -> Result<Arc<PartialFile>, DownloadError> {
        let size = self.plan.size;
        let (p, key, direct) = (
            place.clone(),
            rel.to_string(),
            f.direct && size >= crate::read::DIRECT_FROM,
        );
        Ok(Arc::new(
            confined(&place.shown, move || {
                PartialFile::create(&p, &key, size, direct, keep)
            })
            .await?,
        ))
    }

    /// The ledger that records each part once written and proven: the one an interrupted
    /// attempt left (`keep`), or a new one.
    async fn ledger(
        &self,
        place: &Arc<Place>,
        rel: &str,
        keep: bool,
    ) -> Result<Option<Ledger>, DownloadError> {
        if !self.resumable {
            return Ok(None);
        }
        let (p, key, header) = (place.clone(), rel.to_string(), self.header.clone());
        let l = confined(&place.shown, move || {
            let kept = if keep {
                p.dir.open(&p.ledger, true, &key)?
            } else {
                None
            };
            let mut f = match kept {
                Some(mut f) => {
                    std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))
                        .map_err(|e| fs(&p.shown, e))?;
                    f
                }
                None => {
                    let mut f = p.dir.create(&p.ledger, &key)?;
                    f.write_all(header.as_bytes())
                        .map_err(|e| fs(&p.shown, e))?;
                    f
                }
            };
            f.flush().map_err(|e| fs(&p.shown, e))?;
            Ok(f)
        })
        .await?;
        Ok(Some(Arc::new(std::sync::Mutex::new(l))))
    }

    /// Registry mode: a blob's content must hash to the digest its key names, streamed over
    /// its parts (`sha`) or, with parts from an earlier attempt (`resumed`), over the file.
    async fn prove_blob(
        &self,
        rel: &str,
        sha: Option<Arc<InOrderSha>>,
        resumed: bool,
        file: &PartialFile,
        partial: &Path,
    ) -> Result<(), DownloadError> {
        let Some(expected) = self.blob_digest() else {
            return Ok(());
        };
        if let Some(sha) = sha {
            let actual = sha.finish(self.plan.count).unwrap_or_default();
            if actual != expected {
                return Err(DownloadError::Io {
                    path: rel.to_string(),
                    message: format!(
                        "corrupt blob: its key says sha256:{expected} but its content hashes to sha256:{actual}; not written"
                    ),
                });
            }
        }
        if resumed {
            let h = file.hash(partial, false, &[], true).await?;
            let actual = h.sha256.unwrap_or_default();
            if actual != expected {
                return Err(DownloadError::Integrity {
                    key: rel.to_string(),
                    etag: format!("sha256:{expected}"),
                    got: format!("content hashes to sha256:{actual}"),
                });
            }
        }
        Ok(())
    }
}

/// Fetch every part not already there, two groups out at once: one being fetched while the
/// one before it is hashed and written. Returns every part's MD5 (where parts are hashed) and
/// what the first GET said of the object (its metadata, which a HEAD with partNumber may
/// leave out, and its encryption).
#[allow(clippy::too_many_arguments)]
async fn fetch_parts(
    f: &Fetcher,
    obj: &ListedObject,
    layout: &Layout,
    have: &HashMap<u64, Md5Digest>,
    file: &Arc<PartialFile>,
    ledger: Option<Ledger>,
    sha: Option<Arc<InOrderSha>>,
    partial: &Path,
) -> Result<(Vec<Md5Digest>, Option<Head>), DownloadError> {
    let plan = layout.plan;
    let per_group = f
        .budget
        .group_of(layout.part, f.limits.parts_per_file, plan.count, 2);
    let mut md5s: Vec<Option<Md5Digest>> = (0..plan.count).map(|i| have.get(&i).copied()).collect();
    let mut first_get: Option<Head> = None;
    let todo: Vec<u64> = (0..plan.count).filter(|i| !have.contains_key(i)).collect();
    let groups: Vec<Vec<u64>> = todo
        .chunks(per_group.max(1) as usize)
        .map(<[u64]>::to_vec)
        .collect();
    let groups = groups.into_iter().map(|numbers| {
        let (ledger, sha) = (ledger.clone(), sha.clone());
        fetch_group(f, obj, layout, numbers, file, ledger, sha, partial)
    });
    let mut groups = futures::stream::iter(groups).buffered(2);
    while let Some(group) = groups.next().await {
        let (done, meta) = group?;
        for (i, d) in done {
            md5s[i as usize] = d;
        }
        if first_get.is_none() {
            first_get = meta;
        }
    }
    drop(groups);
    Ok((md5s.into_iter().flatten().collect(), first_get))
}

/// One group of parts: fetched at once, hashed, written at their offsets, and recorded in the
/// ledger once written (a rerun after a kill resumes from there).
#[allow(clippy::too_many_arguments)]
async fn fetch_group(
    f: &Fetcher,
    obj: &ListedObject,
    layout: &Layout,
    numbers: Vec<u64>,
    file: &Arc<PartialFile>,
    ledger: Option<Ledger>,
    sha: Option<Arc<InOrderSha>>,
    partial: &Path,
) -> Result<PartsDone, DownloadError> {
    let ranges: Vec<(u64, u64)> = numbers.iter().map(|&i| layout.plan.range(i)).collect();
    let lens: Vec<u64> = ranges.iter().map(|r| r.1).collect();
    let bufs = f.budget.buffers(&lens).await;
    let gets = ranges.iter().zip(bufs).map(|(&(off, len), buf)| {
        get_into(
            &f.store,
            Some(&f.stats),
            &obj.rel,
            &obj.etag,
            (off, len),
            buf,
        )
    });
    let (filled, mut metas): (Vec<_>, Vec<_>) = futures::future::try_join_all(gets)
        .await?
        .into_iter()
        .unzip();
    let meta = (!metas.is_empty()).then(|| metas.swap_remove(0));
    let hashed: Vec<(bytes::Bytes, Option<Md5Digest>)> = if layout.hash_parts {
        crate::read::hasher::md5_all(filled)
            .await
            .into_iter()
            .map(|(b, d)| (b, Some(d)))
            .collect()
    } else {
        filled.into_iter().map(|b| (b.freeze(), None)).collect()
    };
    let mut work = Vec::with_capacity(hashed.len() + 1);
    if let Some(sha) = sha {
        let data: Vec<(u64, bytes::Bytes)> = numbers
            .iter()
            .zip(&hashed)
            .map(|(&i, (d, _))| (i, d.clone()))
            .collect();
        work.push(
            blocking(partial, move || {
                for (i, d) in data {
                    sha.offer(i, d);
                }
                Ok(())
            })
            .boxed(),
        );
    }
    let mut proven = String::new();
    let mut done = Vec::with_capacity(hashed.len());
    for ((&i, &(off, _)), (data, d)) in numbers.iter().zip(&ranges).zip(hashed) {
        done.push((i, d));
        if let Some(d) = d {
            proven.push_str(&format!("{i} {}\n", hex::encode(d)));
        }
        let file = file.clone();
        work.push(blocking(partial, move || file.write_at(&data, off)).boxed());
    }
    futures::future::try_join_all(work).await?;
    if let Some(l) = ledger {
        blocking(partial, move || {
            l.lock()
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .write_all(proven.as_bytes())
        })
        .await?;
    }
    Ok((done, meta))
}

/// What a group of parts did: each part's number and MD5 (where hashed), and what its first
/// GET said of the object.
type PartsDone = (Vec<(u64, Option<Md5Digest>)>, Option<Head>);

/// Registry mode: a link must hold a valid reference to a blob the directory already holds,
/// or it is not written (a dangling link is what a registry would serve as "blob unknown").
async fn prove_link(
    root: &Arc<Root>,
    rel: &str,
    size: u64,
    path_digest: &Option<String>,
    blob_rel: &BlobRel,
    file: &Arc<PartialFile>,
    partial: &Path,
) -> Result<(), DownloadError> {
    let f = file.clone();
    let content = blocking(partial, move || {
        let mut v = vec![0u8; 4096.min(size as usize)];
        f.file.read_exact_at(&mut v, 0)?;
        Ok(v)
    })
    .await?;
    let fail = |message: String| DownloadError::Io {
        path: rel.to_string(),
        message,
    };
    let target = crate::config::registry::parse_link(&content, path_digest.as_deref())
        .map_err(|e| fail(format!("invalid link: {e}; not written")))?;
    let blob = blob_rel(&target);
    let (r, b, key) = (root.clone(), blob.clone(), rel.to_string());
    let there = confined(partial, move || {
        let (dir, name) = confine::split(&b);
        Ok(r.dir(dir, false, &key).is_ok_and(|d| d.is_file(name)))
    })
    .await?;
    if !there {
        return Err(fail(format!(
            "link to sha256:{target}, whose blob is not in {}: not writing a dangling link",
            root.shown(&blob).display()
        )));
    }
    Ok(())
}

/// Put a proven file under its name: durable, with the object's mtime, renamed over the name
/// only if it is still the file written and proven (never one put in its place), its ledger
/// removed, and the rename made durable by its directory.
async fn install(
    place: &Arc<Place>,
    rel: &str,
    file: Arc<PartialFile>,
    mtime: SystemTime,
    had_ledger: bool,
) -> Result<(), DownloadError> {
    let (p, key) = (place.clone(), rel.to_string());
    confined(&place.shown, move || {
        file.file.sync_all().map_err(|e| fs(&p.shown, e))?;
        file.file.set_modified(mtime).map_err(|e| fs(&p.shown, e))?;
        p.dir.replace(&p.partial, &p.name, &key, &file.file)?;
        if had_ledger {
            let _ = p.dir.remove(&p.ledger);
        }
        Ok(p.dir.sync()?)
    })
    .await?;
    Ok(())
}

/// Bytes `off..off + len` of the object, pinned to `etag`, into `buf`: exactly that many,
/// counted as done in `progress` as they arrive.
pub async fn get_into(
    store: &Store,
    progress: Option<&Stats>,
    rel: &str,
    etag: &str,
    (off, len): (u64, u64),
    mut buf: crate::read::Buffer,
) -> Result<(crate::read::Buffer, Head), DownloadError> {
    let (mut body, head) = store.get_range(rel, off, off + len, Some(etag)).await?;
    let dst = buf.as_mut_slice();
    let mut got = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let end = got + chunk.len();
        if end > dst.len() {
            return Err(DownloadError::Short {
                key: rel.to_string(),
                got: off + end as u64,
                want: off + len,
            });
        }
        dst[got..end].copy_from_slice(&chunk);
        got = end;
        if let Some(stats) = progress {
            stats.moved(chunk.len() as u64);
        }
    }
    if got as u64 != len {
        return Err(DownloadError::Short {
            key: rel.to_string(),
            got: off + got as u64,
            want: off + len,
        });
    }
    Ok((buf, head))
}

/// Where the ETag proves nothing: check the bytes written against the S3 checksum the server
/// stored for this version of the object (a HEAD in checksum mode, pinned to the listed ETag).
/// Unproven where it stores none, or a composite whose part size is not recorded.
async fn prove_by_checksum(
    f: &Fetcher,
    obj: &ListedObject,
    file: &PartialFile,
    partial: &Path,
) -> Result<Proof, DownloadError> {
    let head = f.store.head_checksums_of(&obj.rel, &obj.etag).await?;
    let Some(stored) = head
        .checksums
        .iter()
        .find_map(|(alg, v)| ObjectChecksum::parse(*alg, v))
    else {
        return Ok(Proof::Unproven);
    };
    let part_size = match &stored {
        ObjectChecksum::Full(_) => None,
        ObjectChecksum::Composite { parts, .. } => {
            match s3::recorded_part_size(&head.metadata)
                .filter(|&p| crate::read::etag::fits(obj.size, p, *parts))
            {
                Some(p) => Some(p),
                None => return Ok(Proof::Unproven),
            }
        }
    };
    let ours = file
        .checksum(partial, stored.algorithm(), part_size)
        .await?;
    if ours == stored {
        return Ok(Proof::Checksum);
    }
    Err(DownloadError::Integrity {
        key: obj.rel.clone(),
        etag: obj.etag.clone(),
        got: format!("computed checksum {ours}, the server stored {stored}"),
    })
}

/// Check the bytes written against the ETag: from the parts' MD5s when they were hashed in
/// flight, else by hashing the written file.
async fn prove(
    obj: &ListedObject,
    etag: &ETag,
    md5s: &[Md5Digest],
    hashed: bool,
    file: &PartialFile,
    partial: &Path,
) -> Result<Proof, DownloadError> {
    let got: Vec<ETag> = if hashed {
        vec![match etag {
            ETag::Md5(_) => ETag::Md5(
                md5s.first()
                    .copied()
                    .unwrap_or_else(|| crate::read::etag::md5_of(&[])),
            ),
            _ => ETag::composite(md5s),
        }]
    } else {
        let (single, cands) = match etag {
            ETag::Md5(_) => (true, Vec::new()),
            ETag::Multipart { parts, .. } => (
                false,
                crate::read::etag::candidate_part_sizes(obj.size, *parts, &[], 16),
            ),
            ETag::Opaque(_) => unreachable!(),
        };
        let h = file.hash(partial, single, &cands, false).await?;
        let mut got: Vec<ETag> = h.md5.map(ETag::Md5).into_iter().collect();
        got.extend(h.composites);
        got
    };
    if got.contains(etag) {
        return Ok(match etag {
            ETag::Md5(_) => Proof::Md5,
            _ => Proof::Composite,
        });
    }
    Err(DownloadError::Integrity {
        key: obj.rel.clone(),
        etag: obj.etag.clone(),
        got: got
            .first()
            .map(|e| format!("computed {e}"))
            .unwrap_or_else(|| "no part size fits its part count".into()),
    })
}

/// Filesystem work on a blocking thread; errors name `path`.
async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, DownloadError> {
    let p = path.to_path_buf();
    confined(path, move || f().map_err(|e| fs(&p, e))).await
}

/// Work in the destination directory on a blocking thread.
async fn confined<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, DownloadError> + Send + 'static,
) -> Result<T, DownloadError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io(path, e))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_paths_under_the_root_or_to_an_error_naming_the_key() {
        let root = Path::new("/restore");
        let long = "n".repeat(NAME_MAX);
        let too_long = "n".repeat(NAME_MAX + 1);
        let ok: &[(&str, &str)] = &[
            ("a", "/restore/a"),
            (
                "docker/registry/v2/blobs/sha256/ab/abcd/data",
                "/restore/docker/registry/v2/blobs/sha256/ab/abcd/data",
            ),
            ("dir/.hidden", "/restore/dir/.hidden"),
            ("..x/x..", "/restore/..x/x.."),
            ("sp ace/ü", "/restore/sp ace/ü"),
            ("back\\slash", "/restore/back\\slash"),
        ];
        for (rel, want) in ok {
            assert_eq!(
                local_path(root, rel, 1).unwrap(),
                Path::new(want),
                "{rel:?}"
            );
        }
        assert_eq!(
            local_path(root, &format!("d/{long}"), 1).unwrap(),
            root.join("d").join(&long)
        );

        type Check = fn(&KeyError) -> bool;
        let bad: &[(&str, u64, Check)] = &[
            ("photos/", 0, |e| matches!(e, KeyError::FolderMarker { .. })),
            ("a/b/", 0, |e| matches!(e, KeyError::FolderMarker { .. })),
            // A trailing '/' with bytes is an object a file cannot hold.
            ("photos/", 5, |e| {
                matches!(e, KeyError::EmptyComponent { .. })
            }),
            ("/abs", 1, |e| matches!(e, KeyError::EmptyComponent { .. })),
            ("a//b", 1, |e| matches!(e, KeyError::EmptyComponent { .. })),
            ("a//b/", 0, |e| matches!(e, KeyError::EmptyComponent { .. })),
            ("", 0, |e| matches!(e, KeyError::EmptyComponent { .. })),
            ("..", 1, |e| matches!(e, KeyError::DotComponent { .. })),
            ("../etc/passwd", 1, |e| {
                matches!(e, KeyError::DotComponent { .. })
            }),
            ("a/../../b", 1, |e| {
                matches!(e, KeyError::DotComponent { .. })
            }),
            ("a/./b", 1, |e| matches!(e, KeyError::DotComponent { .. })),
            ("a\0b", 1, |e| matches!(e, KeyError::Nul { .. })),
            (".x.s3ferry-partial", 1, |e| {
                matches!(e, KeyError::Reserved { .. })
            }),
        ];
        for (rel, size, is) in bad {
            let e = local_path(root, rel, *size).unwrap_err();
            assert!(is(&e), "{rel:?}: {e}");
            assert!(
                e.to_string().contains(&format!("{rel:?}")),
                "names the key: {e}"
            );
        }
        let e = local_path(root, &format!("d/{too_long}/f"), 1).unwrap_err();
        assert!(
            matches!(&e, KeyError::NameTooLong { len, .. } if *len == NAME_MAX + 1),
            "{e}"
        );
        let deep = vec![long.as_str(); 17].join("/");
        let e = local_path(root, &deep, 1).unwrap_err();
        assert!(matches!(e, KeyError::PathTooLong { .. }), "{e}");
    }

    #[test]
    fn mtimes_read_back_as_rclone_and_s3ferry_write_them() {
        let t = |s, n| Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(s, n));
        assert_eq!(parse_mtime("1609459200.000000005"), t(1_609_459_200, 5));
        assert_eq!(
            parse_mtime(&s3::format_mtime(t(7, 123_456_789).unwrap())),
            t(7, 123_456_789)
        );
        assert_eq!(parse_mtime("1609459200.5"), t(1_609_459_200, 500_000_000));
        assert_eq!(parse_mtime("1609459200"), t(1_609_459_200, 0));
        assert_eq!(parse_mtime(" 12.25 "), t(12, 250_000_000));
        for bad in ["", "abc", "1.1234567891", "1.-5", "-1.0", "1.2e3"] {
            assert_eq!(parse_mtime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn downloads_in_progress_sit_beside_their_target_under_a_hidden_name() {
        let p = partial_name("data");
        assert_eq!(p, ".data.s3ferry-partial");
        assert_eq!(ledger_name(&p), ".data.s3ferry-parts");
        assert!(is_partial(&p) && is_partial(&ledger_name(&p)));
        assert!(!is_partial("data"));
        // A name at the limit still gets a partial name within it.
        let long = "n".repeat(NAME_MAX);
        let p = partial_name(&long);
        assert!(p.len() <= NAME_MAX && is_partial(&p), "{p}");
        assert_ne!(partial_name(&"m".repeat(NAME_MAX)), p);
    }
}
