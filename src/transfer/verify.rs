//! Stage 6: prove that an object holds the same bytes as a source file.
//!
//! The ETag is the proof when it can be: a plain MD5 ETag against the file's MD5, a multipart
//! ETag by recomputing `md5(concat(part md5s))-N` from the file with the right part size (from
//! our metadata, else `HEAD ?partNumber=1`, else the sizes common tools use). A listing without
//! ETags (some servers omit them) costs one HEAD per object, not a download. When no ETag can
//! prove it (SSE-KMS, SSE-C, an unknown part size) the S3 checksum the server stored is the
//! next proof: one HEAD in checksum mode, and the same checksum computed over the file. Only
//! where neither exists is the object downloaded and its MD5 compared, unless `--no-download`,
//! and then it is counted as unverified — never as a match.

use std::path::Path;
use std::sync::Arc;

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::march::list::ListedObject;
use crate::march::walk::LocalFile;
use crate::read::checksum::{self, Algorithm, Checksum, ObjectChecksum};
use crate::read::etag::{ETag, MIB, Md5Digest, PartPlan, candidate_part_sizes};
use crate::read::{self, ReadError, SourceFile, Stamp};
use crate::s3::{self, Head, S3Error, Store};

/// Block size for streaming reads while hashing.
const HASH_BLOCK: u64 = 4 * MIB;
/// Most part sizes tried when reproducing a multipart ETag without a recorded part size.
const MAX_CANDIDATES: usize = 8;

/// What proved a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The ETag: the object's MD5, or the composite of its parts' MD5s.
    Etag,
    /// The S3 checksum the server stored (where the ETag is not an MD5).
    Checksum,
    /// The object's bytes, downloaded.
    Download,
}

/// The outcome of checking one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Match(By),
    SizeDiffers,
    HashDiffers,
    /// Content could not be proven (reason given); counted as a difference, never a match.
    Unverified(String),
    /// Registry mode: the source blob does not hash to the digest its path names.
    CorruptSource(String),
    Error(String),
}

/// How far `check` may go to prove content.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Download objects whose ETag cannot prove their content.
    pub download: bool,
    /// Download and compare every object, ETag or not (`--download`).
    pub always_download: bool,
    /// Parts of one file hashed at once.
    pub parallel_parts: usize,
}

/// What one sequential pass over a file computes: any of its MD5, its composite ETags for
/// several part sizes, and its SHA-256 (a registry blob's name).
#[derive(Debug, Default)]
pub struct Hashes {
    pub md5: Option<Md5Digest>,
    pub composites: Vec<ETag>,
    pub sha256: Option<String>,
}

/// Hash a file in one pass: `md5` for the whole-file MD5, one composite ETag per part size,
/// and the SHA-256 when `sha256`.
pub fn hash_file(
    path: &Path,
    walked: Stamp,
    md5: bool,
    part_sizes: &[u64],
    sha256: bool,
) -> Result<Hashes, ReadError> {
    hash_open(&SourceFile::open(path, walked)?, md5, part_sizes, sha256)
}

/// [`hash_file`] of a file already open.
pub fn hash_open(
    f: &SourceFile,
    md5: bool,
    part_sizes: &[u64],
    sha256: bool,
) -> Result<Hashes, ReadError> {
    struct Cand {
        part: u64,
        filled: u64,
        h: Md5,
        done: Vec<Md5Digest>,
    }
    let mut cands: Vec<Cand> = part_sizes
        .iter()
        .map(|&part| Cand {
            part,
            filled: 0,
            h: Md5::new(),
            done: Vec::new(),
        })
        .collect();
    let mut whole = md5.then(Md5::new);
    let mut sha = sha256.then(Sha256::new);
    f.for_each_block(HASH_BLOCK, |all| {
        if let Some(h) = whole.as_mut() {
            h.update(all);
        }
        if let Some(h) = sha.as_mut() {
            h.update(all);
        }
        for c in cands.iter_mut() {
            let mut block = all;
            while !block.is_empty() {
                let take = ((c.part - c.filled) as usize).min(block.len());
                c.h.update(&block[..take]);
                c.filled += take as u64;
                block = &block[take..];
                if c.filled == c.part {
                    c.done.push(std::mem::take(&mut c.h).finalize().into());
                    c.filled = 0;
                }
            }
        }
    })?;
    Ok(Hashes {
        md5: whole.map(|h| h.finalize().into()),
        composites: cands
            .into_iter()
            .map(|mut c| {
                if c.filled > 0 || c.done.is_empty() {
                    c.done.push(c.h.finalize().into());
                }
                ETag::composite(&c.done)
            })
            .collect(),
        sha256: sha.map(|h| hex::encode(h.finalize())),
    })
}

/// Composite ETag for one known part size, hashing parts in parallel.
pub async fn file_composite_parallel(
    entry: &LocalFile,
    part_size: u64,
    parallel: usize,
) -> Result<ETag, ReadError> {
    let plan = PartPlan::with_part_size(entry.size, part_size);
    let (path, st) = (entry.path.clone(), entry.stamp());
    let file = Arc::new(read::blocking(&entry.rel, move || SourceFile::open(&path, st)).await?);
    let mut digests = vec![[0u8; 16]; plan.count as usize];
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0u64;
    loop {
        while next < plan.count && set.len() < parallel.max(1) {
            let (off, len) = plan.range(next);
            let f = file.clone();
            let i = next as usize;
            set.spawn_blocking(move || -> Result<(usize, Md5Digest), ReadError> {
                let mut h = Md5::new();
                f.for_each_block_in(off, len, HASH_BLOCK, |b| h.update(b))?;
                Ok((i, h.finalize().into()))
            });
            next += 1;
        }
        match set.join_next().await {
            None => break,
            Some(r) => {
                let (i, d) = r.map_err(|e| ReadError::Io {
                    path: entry.rel.clone(),
                    message: e.to_string(),
                })??;
                digests[i] = d;
            }
        }
    }
    let f = file.clone();
    read::blocking(&entry.rel, move || f.check_unchanged()).await?;
    Ok(ETag::composite(&digests))
}

/// Registry mode: the SHA-256 a source blob must hash to, and what it hashed to when a pass
/// over the file computed it on the way.
struct BlobCheck<'a> {
    expected: Option<&'a str>,
    actual: Option<String>,
}

impl BlobCheck<'_> {
    fn wanted(&self) -> bool {
        self.expected.is_some() && self.actual.is_none()
    }

    fn take(&mut self, h: &mut Hashes) {
        if let Some(a) = h.sha256.take() {
            self.actual = Some(a);
        }
    }
}

async fn local_md5(entry: &LocalFile, blob: &mut BlobCheck<'_>) -> Result<Md5Digest, ReadError> {
    let (path, st, sha) = (entry.path.clone(), entry.stamp(), blob.wanted());
    let mut h = read::blocking(&entry.rel, move || hash_file(&path, st, true, &[], sha)).await?;
    blob.take(&mut h);
    Ok(h.md5.expect("md5 requested"))
}

/// Download the object and compare its MD5 with the file's.
async fn download_compare(store: &Store, entry: &LocalFile, blob: &mut BlobCheck<'_>) -> Verdict {
    let remote = async { body_md5(store.get(&entry.rel).await?).await };
    let (remote, local) = tokio::join!(remote, local_md5(entry, blob));
    match (remote, local) {
        (Err(e), _) => Verdict::Error(e.to_string()),
        (_, Err(e)) => Verdict::Error(e.to_string()),
        (Ok((n, _)), _) if n != entry.size => Verdict::SizeDiffers,
        (Ok((_, r)), Ok(l)) if r == l => Verdict::Match(By::Download),
        _ => Verdict::HashDiffers,
    }
}

/// The checksum of a file as S3 stores it for `stored`'s shape: over the whole file, or, for a
/// composite, over each part of `part_size` bytes and then over those. With `sha256`, the
/// file's SHA-256 too (a registry blob's name), from the same pass.
pub fn file_checksum(
    f: &SourceFile,
    alg: Algorithm,
    part_size: Option<u64>,
    sha256: bool,
) -> Result<(ObjectChecksum, Option<String>), ReadError> {
    let mut sha = sha256.then(Sha256::new);
    let mut h = checksum::Hasher::new(alg);
    let mut parts: Vec<(Checksum, u64)> = Vec::new();
    let mut filled = 0u64;
    f.for_each_block(HASH_BLOCK, |all| {
        if let Some(s) = sha.as_mut() {
            s.update(all);
        }
        let Some(part) = part_size else {
            h.update(all);
            return;
        };
        let mut block = all;
        while !block.is_empty() {
            let take = ((part - filled) as usize).min(block.len());
            h.update(&block[..take]);
            filled += take as u64;
            block = &block[take..];
            if filled == part {
                let done = std::mem::replace(&mut h, checksum::Hasher::new(alg));
                parts.push((done.finish(), part));
                filled = 0;
            }
        }
    })?;
    let sha = sha.map(|s| hex::encode(s.finalize()));
    if part_size.is_none() {
        return Ok((ObjectChecksum::Full(h.finish()), sha));
    }
    if filled > 0 || parts.is_empty() {
        parts.push((h.finish(), filled));
    }
    let sum = ObjectChecksum::of_parts(&parts).expect("at least one part");
    Ok((sum, sha))
}

/// Prove the object by the checksum the server stored (a HEAD in checksum mode) against the
/// same checksum of the file. `None` when the server stores none, or a composite whose part
/// size is unknown: the caller falls back to downloading.
async fn by_checksum(
    store: &Store,
    entry: &LocalFile,
    blob: &mut BlobCheck<'_>,
) -> Option<Verdict> {
    let head = match store.head_checksums(&entry.rel).await {
        Ok(h) => h,
        Err(e) => return Some(Verdict::Error(e.to_string())),
    };
    if head.content_length != entry.size {
        return Some(Verdict::SizeDiffers);
    }
    let stored = head
        .checksums
        .iter()
        .find_map(|(alg, v)| ObjectChecksum::parse(*alg, v))?;
    let part_size = match &stored {
        ObjectChecksum::Full(_) => None,
        ObjectChecksum::Composite { parts, .. } => Some(
            s3::recorded_part_size(&head.metadata)
                .filter(|&p| crate::read::etag::fits(entry.size, p, *parts))?,
        ),
    };
    let (path, st, alg, sha) = (
        entry.path.clone(),
        entry.stamp(),
        stored.algorithm(),
        blob.wanted(),
    );
    let computed = read::blocking(&entry.rel, move || {
        file_checksum(&SourceFile::open(&path, st)?, alg, part_size, sha)
    })
    .await;
    Some(match computed {
        Err(e) => Verdict::Error(e.to_string()),
        Ok((ours, sha)) => {
            if let Some(a) = sha {
                blob.actual = Some(a);
            }
            if ours == stored {
                Verdict::Match(By::Checksum)
            } else {
                Verdict::HashDiffers
            }
        }
    })
}

async fn cannot_prove(
    store: &Store,
    entry: &LocalFile,
    opts: VerifyOptions,
    why: &str,
    blob: &mut BlobCheck<'_>,
) -> Verdict {
    if let Some(v) = by_checksum(store, entry, blob).await {
        return v;
    }
    if opts.download {
        download_compare(store, entry, blob).await
    } else {
        Verdict::Unverified(why.to_string())
    }
}

/// Check one source file against its object. `blob_digest` (registry mode with
/// `--verify-digests`) is the SHA-256 the file's path names: the file is hashed for it in the
/// same pass as for the MD5, and a file that does not match is a corrupt source blob, whatever
/// the bucket holds.
pub async fn verify(
    store: &Store,
    src: &LocalFile,
    dst: &ListedObject,
    opts: VerifyOptions,
    blob_digest: Option<&str>,
) -> Verdict {
    let mut blob = BlobCheck {
        expected: blob_digest,
        actual: None,
    };
    let v = verify_content(store, src, dst, opts, &mut blob, None).await;
    let Some(expected) = blob.expected else {
        return v;
    };
    let actual = match blob.actual {
        Some(a) => a,
        None => {
            let (path, st) = (src.path.clone(), src.stamp());
            match read::blocking(&src.rel, move || hash_file(&path, st, false, &[], true)).await {
                Ok(h) => h.sha256.expect("sha256 requested"),
                Err(e) => return Verdict::Error(e.to_string()),
            }
        }
    };
    if actual != expected {
        return Verdict::CorruptSource(format!(
            "corrupt source blob: its path says sha256:{expected} but its content hashes to sha256:{actual}"
        ));
    }
    v
}

/// [`verify`] of an object a HEAD has just described (`head`), asking nothing more of it than
/// the content needs (no registry digest).
pub async fn verify_headed(
    store: &Store,
    src: &LocalFile,
    dst: &ListedObject,
    opts: VerifyOptions,
    head: Head,
) -> Verdict {
    let mut blob = BlobCheck {
        expected: None,
        actual: None,
    };
    verify_content(store, src, dst, opts, &mut blob, Some(head)).await
}

async fn verify_content(
    store: &Store,
    src: &LocalFile,
    dst: &ListedObject,
    opts: VerifyOptions,
    blob: &mut BlobCheck<'_>,
    known: Option<Head>,
) -> Verdict {
    if src.size != dst.size {
        return Verdict::SizeDiffers;
    }
    if opts.always_download {
        return download_compare(store, src, blob).await;
    }
    // Some servers list objects without their ETags; one HEAD asks for it, which costs far
    // less than downloading the object to prove it.
    let mut etag = ETag::parse(&dst.etag);
    let mut headed = None;
    if matches!(&etag, ETag::Opaque(s) if s.is_empty()) {
        let head = match known.clone() {
            Some(h) => Ok(h),
            None => store.head(&src.rel, None).await,
        };
        match head {
            Ok(h) if h.etag_not_md5 => {
                let why = "encrypted object: ETag is not an MD5";
                return cannot_prove(store, src, opts, why, blob).await;
            }
            Ok(h) if h.content_length != src.size => return Verdict::SizeDiffers,
            Ok(h) => {
                etag = ETag::parse(&h.etag);
                headed = Some(h);
            }
            Err(e) => return Verdict::Error(e.to_string()),
        }
    }
    match etag {
        ETag::Md5(remote) => {
            let local = match local_md5(src, blob).await {
                Ok(m) => m,
                Err(e) => return Verdict::Error(e.to_string()),
            };
            if local == remote {
                return Verdict::Match(By::Etag);
            }
            // A plain ETag that differs: a real difference, unless the object is encrypted
            // with KMS or a customer key, whose ETags are not MD5s.
            let head = match known {
                Some(h) => Ok(h),
                None => store.head(&src.rel, None).await,
            };
            match head {
                Ok(h) if h.etag_not_md5 => {
                    cannot_prove(
                        store,
                        src,
                        opts,
                        "encrypted object: ETag is not an MD5",
                        blob,
                    )
                    .await
                }
                Ok(_) => Verdict::HashDiffers,
                Err(e) => Verdict::Error(e.to_string()),
            }
        }
        want @ ETag::Multipart { parts, .. } => {
            verify_multipart(store, src, want, parts, headed.or(known), opts, blob).await
        }
        ETag::Opaque(_) => cannot_prove(store, src, opts, "ETag is not an MD5", blob).await,
    }
}

async fn verify_multipart(
    store: &Store,
    src: &LocalFile,
    want: ETag,
    parts: u32,
    headed: Option<Head>,
    opts: VerifyOptions,
    blob: &mut BlobCheck<'_>,
) -> Verdict {
    // One HEAD gives both our recorded part size and, where supported, part 1's length. A
    // HEAD already made for the ETag serves when it holds a part size that fits.
    let recorded = |h: &Head| s3::recorded_part_size(&h.metadata);
    let head = match headed {
        Some(h) if recorded(&h).is_some_and(|p| crate::read::etag::fits(src.size, p, parts)) => {
            Some(h)
        }
        _ => match store.head_part_one(&src.rel).await {
            Ok(h) => h,
            Err(e) => return Verdict::Error(e.to_string()),
        },
    };
    if head.as_ref().is_some_and(|h| h.etag_not_md5) {
        return cannot_prove(
            store,
            src,
            opts,
            "encrypted object: ETag is not an MD5",
            blob,
        )
        .await;
    }
    let mut hints = Vec::new();
    if let Some(h) = &head {
        if let Some(p) = recorded(h) {
            hints.push(p);
        }
        if h.content_length < src.size || parts == 1 {
            hints.push(h.content_length);
        }
    }
    let known = hints
        .iter()
        .copied()
        .find(|&p| crate::read::etag::fits(src.size, p, parts));
    // A known part size and no SHA-256 wanted: hash the parts in parallel. A blob is hashed
    // in one sequential pass instead, which gives its SHA-256 with the parts' MD5s.
    if let Some(part) = known
        && !blob.wanted()
    {
        return match file_composite_parallel(src, part, opts.parallel_parts).await {
            Ok(got) if got == want => Verdict::Match(By::Etag),
            Ok(_) => Verdict::HashDiffers,
            Err(e) => Verdict::Error(e.to_string()),
        };
    }
    let cands = match known {
        Some(part) => vec![part],
        None => candidate_part_sizes(src.size, parts, &hints, MAX_CANDIDATES),
    };
    if !cands.is_empty() {
        let (path, st, sha) = (src.path.clone(), src.stamp(), blob.wanted());
        let exact = known.is_some();
        match read::blocking(&src.rel, move || hash_file(&path, st, false, &cands, sha)).await {
            Ok(mut h) => {
                blob.take(&mut h);
                if h.composites.contains(&want) {
                    return Verdict::Match(By::Etag);
                }
                if exact {
                    return Verdict::HashDiffers;
                }
            }
            Err(e) => return Verdict::Error(e.to_string()),
        }
    }
    cannot_prove(
        store,
        src,
        opts,
        "multipart object with unknown part size",
        blob,
    )
    .await
}

/// An object's length and MD5, from its bytes (pinned to its listed ETag when it has one).
async fn object_md5(store: &Store, obj: &ListedObject) -> Result<(u64, Md5Digest), S3Error> {
    let pin = (!obj.etag.trim_matches('"').is_empty()).then_some(obj.etag.as_str());
    body_md5(store.get_range(&obj.rel, 0, 0, pin).await?.0).await
}

/// The length and MD5 of a streamed object body.
async fn body_md5(mut body: s3::Body) -> Result<(u64, Md5Digest), S3Error> {
    let mut h = Md5::new();
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok((n, h.finalize().into()))
}

/// An object's ETag: the listed one, or a HEAD's where the listing had none (s3s-fs).
async fn etag_of(store: &Store, obj: &ListedObject) -> Result<ETag, S3Error> {
    if !obj.etag.trim_matches('"').is_empty() {
        return Ok(ETag::parse(&obj.etag));
    }
    Ok(ETag::parse(&store.head(&obj.rel, None).await?.etag))
}

/// Check an object of one bucket against the same key in another: by size, then by ETag
/// where the ETags settle it (equal, or two MD5s), else by both objects' bytes (unless
/// `--no-download`; always with `--download`).
pub async fn verify_objects(
    src_store: &Store,
    src: &ListedObject,
    dst_store: &Store,
    dst: &ListedObject,
    opts: VerifyOptions,
) -> Verdict {
    if src.size != dst.size {
        return Verdict::SizeDiffers;
    }
    if !opts.always_download {
        let (a, b) = match tokio::try_join!(etag_of(src_store, src), etag_of(dst_store, dst)) {
            Ok(e) => e,
            Err(e) => return Verdict::Error(e.to_string()),
        };
        if a == b && !matches!(a, ETag::Opaque(_)) {
            return Verdict::Match(By::Etag);
        }
        if matches!((&a, &b), (ETag::Md5(_), ETag::Md5(_))) {
            return Verdict::HashDiffers;
        }
        if !opts.download {
            return Verdict::Unverified(format!(
                "ETags {a} and {b} cannot be compared (other part layouts, or not MD5s); drop --no-download to compare the bytes"
            ));
        }
    }
    match tokio::try_join!(object_md5(src_store, src), object_md5(dst_store, dst)) {
        Err(e) => Verdict::Error(e.to_string()),
        Ok(((n, _), (m, _))) if n != src.size || m != dst.size => Verdict::SizeDiffers,
        Ok(((_, x), (_, y))) if x == y => Verdict::Match(By::Download),
        Ok(_) => Verdict::HashDiffers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::etag::md5_of;

    #[test]
    fn composites_in_one_pass_match_direct_computation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..(11 * MIB as usize + 7))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&p, &data).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        let st = Stamp {
            size: m.len(),
            mtime: m.modified().unwrap(),
        };
        let sizes = [5 * MIB, 8 * MIB, 3 * MIB + 1];
        let got = hash_file(&p, st, false, &sizes, false).unwrap().composites;
        for (i, &ps) in sizes.iter().enumerate() {
            let want = ETag::composite(&data.chunks(ps as usize).map(md5_of).collect::<Vec<_>>());
            assert_eq!(got[i], want, "part size {ps}");
        }
        assert_eq!(
            hash_file(&p, st, true, &[], false).unwrap().md5,
            Some(md5_of(&data))
        );
    }

    #[tokio::test]
    async fn parallel_composite_matches() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..(7 * MIB as usize + 3))
            .map(|i| (i % 253) as u8)
            .collect();
        std::fs::write(&p, &data).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        let e = LocalFile {
            rel: "f".into(),
            path: p.clone(),
            size: m.len(),
            mtime: m.modified().unwrap(),
            ctime: m.modified().unwrap(),
        };
        let got = file_composite_parallel(&e, 2 * MIB, 3).await.unwrap();
        let want = ETag::composite(&data.chunks(2 << 20).map(md5_of).collect::<Vec<_>>());
        assert_eq!(got, want);
    }

    #[test]
    fn empty_file_composite() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"").unwrap();
        let m = std::fs::metadata(&p).unwrap();
        let st = Stamp {
            size: 0,
            mtime: m.modified().unwrap(),
        };
        assert_eq!(
            hash_file(&p, st, false, &[5 * MIB], false)
                .unwrap()
                .composites[0],
            ETag::composite(&[md5_of(b"")])
        );
    }
}
