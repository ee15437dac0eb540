//! Writes that prove themselves: one PUT ([`put_proven`]), or one multipart upload as a value: created (or adopted from an interrupted run), fed parts,
//! then completed and proven, or aborted. Local files (`upload`) and objects streamed from
//! another bucket (`relay`) feed the same session, so both send parts with Content-MD5,
//! check every part's ETag, retry integrity failures the same way and prove the completed
//! object by its composite ETag. Where a checksum goes with the bytes (`--s3-checksum`, a
//! registry blob's digest), the server's answer must carry the same value, or the write is
//! an integrity failure like a wrong ETag; where the ETag is not an MD5, that checksum is the
//! proof.

use std::sync::Arc;
use std::time::Duration;

use crate::read::ReadError;
use crate::read::checksum::{Algorithm, Checksum, ChecksumMode, ObjectChecksum};
use crate::read::etag::{ETag, Md5Digest, PartError};
use crate::report::Stats;
use crate::s3::{Answered, Head, ObjectMeta, PartInfo, S3Error, Store, Written};

/// Why a file was not uploaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{path}: {message}")]
    Integrity { path: String, message: String },
    #[error("{path}: {source}")]
    Parts { path: String, source: PartError },
    #[error("{path}: internal error: {message}")]
    Internal { path: String, message: String },
    /// A bucket copy's read of its source failed, as a restore's would.
    #[error(transparent)]
    Download(Arc<crate::transfer::download::DownloadError>),
    /// A corrupt blob or an invalid or dangling link in registry mode: never uploaded.
    #[error("{path}: {message}")]
    Registry { path: String, message: String },
}

impl UploadError {
    /// What this failure means for the run (see [`crate::report::class`]).
    pub fn class(&self) -> crate::report::class::Class {
        use crate::report::class::Class;
        match self {
            UploadError::S3(e) => e.class(),
            UploadError::Read(e) => e.class(),
            UploadError::Integrity { .. } => Class::Integrity,
            UploadError::Parts { .. } | UploadError::Registry { .. } => Class::Permanent,
            UploadError::Internal { .. } => Class::Permanent,
            UploadError::Download(e) => e.class(),
        }
    }

    /// Whether a rerun could succeed without anyone changing anything.
    pub fn is_temporary(&self) -> bool {
        self.class().is_temporary()
    }
}

/// What the upload proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The server's ETag matches our MD5 (or composite).
    Verified,
    /// The server's ETag is not an MD5, and the checksum it stored is the one we sent.
    Checksum,
    /// The server's ETag is not an MD5 (SSE-KMS, SSE-C, or a gateway's own) and no checksum
    /// proves the object: `check` must download to verify.
    NotComparable,
}

/// Whether the server's answer for `alg` is `ours`: `None` when it gave none for `alg`
/// (a server without checksum support, or a part of a full-object upload on some servers).
pub fn checksum_answered(answered: &Answered, ours: &ObjectChecksum) -> Option<bool> {
    let (_, value) = answered.iter().find(|(a, _)| *a == ours.algorithm())?;
    Some(
        match (ObjectChecksum::parse(ours.algorithm(), value), ours) {
            (Some(theirs), _) if &theirs == ours => true,
            // A composite written without its part count.
            (Some(ObjectChecksum::Full(c)), ObjectChecksum::Composite { of_parts, .. }) => {
                &c == of_parts
            }
            _ => false,
        },
    )
}

/// Where the ETag cannot prove a write and the answer did not carry the checksum we sent
/// (some servers answer CompleteMultipartUpload without it): the checksum the server stored,
/// from a HEAD in checksum mode.
async fn ask_stored(
    store: &Store,
    rel: &str,
    w: &mut Written,
    sent: Option<&ObjectChecksum>,
    etag: &Result<Proof, String>,
) -> Result<(), S3Error> {
    if let (Some(ours), Ok(Proof::NotComparable)) = (sent, etag)
        && checksum_answered(&w.checksums, ours).is_none()
    {
        w.checksums = store.head_checksums(rel).await?.checksums;
    }
    Ok(())
}

/// Add the checksum we sent to an ETag's verdict: a stored checksum that differs from ours
/// fails the write, one that matches proves it where the ETag cannot.
fn with_checksum(
    etag: Result<Proof, String>,
    w: &Written,
    sent: Option<&ObjectChecksum>,
) -> Result<Proof, String> {
    let answered = sent.and_then(|ours| Some((ours, checksum_answered(&w.checksums, ours)?)));
    match (answered, etag) {
        (Some((ours, false)), _) => {
            let theirs = w
                .checksums
                .iter()
                .find(|(a, _)| *a == ours.algorithm())
                .map_or("", |(_, v)| v.as_str());
            Err(format!(
                "server stored checksum {} {theirs}, not the {ours} we sent",
                ours.algorithm()
            ))
        }
        (Some((_, true)), Ok(Proof::NotComparable)) => Ok(Proof::Checksum),
        (_, etag) => etag,
    }
}

/// Compare a single-PUT ETag with the MD5 we sent.
pub fn prove_single(w: &Written, sent: &Md5Digest, kms_configured: bool) -> Result<Proof, String> {
    if w.etag_not_md5 || kms_configured {
        return Ok(Proof::NotComparable);
    }
    match ETag::parse(&w.etag) {
        ETag::Md5(d) if &d == sent => Ok(Proof::Verified),
        ETag::Md5(d) => Err(format!(
            "server ETag {} is not the MD5 we sent ({})",
            hex::encode(d),
            hex::encode(sent)
        )),
        _ => Ok(Proof::NotComparable),
    }
}

/// How integrity failures (a bad digest, an ETag that is not the MD5 sent) are retried:
/// `--retries` attempts in all, `--retries-sleep` apart.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retry {
    /// Attempts after the first.
    pub again: u32,
    pub sleep: Duration,
}

impl Retry {
    /// Count and log a retry after `failure`, then pause.
    pub async fn pause(&self, stats: &Stats, rel: &str, failure: &str) {
        Stats::add(&stats.retries, 1);
        tracing::info!("{rel}: retrying: {failure}");
        if !self.sleep.is_zero() {
            tokio::time::sleep(self.sleep).await;
        }
    }
}

/// Whether the server refused a body for its Content-MD5.
pub fn is_bad_digest(e: &S3Error) -> bool {
    matches!(e, S3Error::Service { code, .. } if code == "BadDigest" || code == "InvalidDigest")
}

/// The written object's ETag: the one the write's answer carried, or, when it carried none
/// (Ceph RGW answers CompleteMultipartUpload with an empty `<ETag>`), the one a HEAD reports.
/// Either way the ETag is then proven against what we sent; an empty one is never taken as
/// "not comparable". The HEAD, when one was needed, is handed back for other checks to use.
pub async fn with_etag(
    store: &Store,
    rel: &str,
    w: Written,
) -> Result<(Written, Option<Head>), S3Error> {
    if !w.etag.trim_matches('"').is_empty() {
        return Ok((w, None));
    }
    let head = store.head(rel, None).await?;
    tracing::debug!(
        "{rel}: the write's answer had no ETag; HEAD says {}",
        head.etag
    );
    let written = Written {
        etag: head.etag.clone(),
        etag_not_md5: w.etag_not_md5 || head.etag_not_md5,
        checksums: w.checksums,
    };
    Ok((written, Some(head)))
}

/// Compare a completed multipart ETag with the composite of our part MD5s.
pub fn prove_composite(
    w: &Written,
    parts: &[Md5Digest],
    kms_configured: bool,
) -> Result<Proof, String> {
    if w.etag_not_md5 || kms_configured {
        return Ok(Proof::NotComparable);
    }
    let want = ETag::composite(parts);
    match ETag::parse(&w.etag) {
        got @ ETag::Multipart { .. } if got == want => Ok(Proof::Verified),
        got @ ETag::Multipart { .. } => Err(format!(
            "server ETag {got} is not the composite of our parts ({want})"
        )),
        _ => Ok(Proof::NotComparable),
    }
}

/// Upload `data` (whose MD5 is `md5`, and `sum` its checksum to send) in one PUT with
/// Content-MD5 and prove it: the ETag must be that MD5, and a stored checksum must be `sum`.
/// A bad digest or another ETag or checksum is retried; an object that still fails is
/// deleted, so no later run skips it. With `--s3-checksum auto`, an answer whose ETag proves
/// nothing teaches the run to send checksums, and this object is sent again with one.
#[allow(clippy::too_many_arguments)]
pub async fn put_proven(
    store: &Store,
    stats: &Arc<Stats>,
    retry: Retry,
    rel: &str,
    data: bytes::Bytes,
    md5: Md5Digest,
    mut sum: Option<Checksum>,
    meta: &ObjectMeta,
) -> Result<Proof, UploadError> {
    let kms = store.put.etag_not_md5();
    let len = data.len() as u64;
    let mut attempt = 0;
    loop {
        let sent = store.put_object(rel, data.clone(), &md5, sum.as_ref(), meta, stats.clone());
        let result = match sent.await {
            Ok(w) => with_etag(store, rel, w).await.map(|(w, _)| w),
            Err(e) => Err(e),
        };
        let ours = sum.clone().map(ObjectChecksum::Full);
        let result = match result {
            Ok(mut w) => {
                let etag = prove_single(&w, &md5, kms);
                ask_stored(store, rel, &mut w, ours.as_ref(), &etag)
                    .await
                    .map(|()| (w, etag))
            }
            Err(e) => Err(e),
        };
        let failure = match result {
            Ok((w, etag)) => match with_checksum(etag, &w, ours.as_ref()) {
                Ok(Proof::NotComparable)
                    if sum.is_none() && store.put.checksum == ChecksumMode::Auto =>
                {
                    let first = store.put.learn_opaque_etags();
                    let alg = store.put.checksum().expect("auto sends a checksum now");
                    if first {
                        tracing::info!(
                            "{rel}: the server's ETags are not MD5s: uploads carry {alg} checksums from now on"
                        );
                    }
                    let bytes = data.clone();
                    sum = Some(
                        crate::read::blocking(rel, move || Ok(Checksum::of(alg, &bytes))).await?,
                    );
                    // Sent again with the checksum: these bytes do not count twice.
                    stats.unmoved(len);
                    continue;
                }
                Ok(proof) => return Ok(proof),
                Err(message) => {
                    // Sent again below: these bytes do not count twice.
                    stats.unmoved(len);
                    message
                }
            },
            Err(e) if is_bad_digest(&e) => e.to_string(),
            Err(e) => return Err(e.into()),
        };
        if attempt >= retry.again {
            let _ = store.delete(rel).await;
            return Err(UploadError::Integrity {
                path: rel.to_string(),
                message: failure,
            });
        }
        attempt += 1;
        retry.pause(stats, rel, &failure).await;
    }
}

/// One multipart upload in progress.
pub struct Session {
    pub store: Arc<Store>,
    pub stats: Arc<Stats>,
    pub retry: Retry,
    pub rel: String,
    pub upload_id: String,
    /// The checksum every part carries, and the object's.
    pub checksum: Option<Algorithm>,
}

impl Session {
    /// Start a new upload of `rel`, its metadata recording `part_size`, its parts carrying
    /// `checksum`.
    pub async fn create(
        store: Arc<Store>,
        stats: Arc<Stats>,
        retry: Retry,
        rel: &str,
        meta: &ObjectMeta,
        part_size: u64,
        checksum: Option<Algorithm>,
    ) -> Result<Session, S3Error> {
        let upload_id = store
            .create_multipart(rel, meta, part_size, checksum)
            .await?;
        Ok(Session::adopt(
            store, stats, retry, rel, upload_id, checksum,
        ))
    }

    /// Go on with an upload an earlier run started (with `checksum`, as it was created).
    pub fn adopt(
        store: Arc<Store>,
        stats: Arc<Stats>,
        retry: Retry,
        rel: &str,
        upload_id: String,
        checksum: Option<Algorithm>,
    ) -> Session {
        Session {
            store,
            stats,
            retry,
            rel: rel.to_string(),
            upload_id,
            checksum,
        }
    }

    /// Send part `number` (`data`, whose MD5 is `md5` and checksum `sum`) unless `existing`
    /// (the part an interrupted upload already holds) has these very bytes. The returned ETag
    /// must be the MD5 sent, and a checksum the answer carries must be `sum`; a bad digest or
    /// another ETag or checksum is retried. Returns the part's ETag and whether it was reused.
    pub async fn send(
        &self,
        number: u32,
        data: bytes::Bytes,
        md5: Md5Digest,
        sum: Option<&Checksum>,
        existing: Option<&PartInfo>,
    ) -> Result<(String, bool), UploadError> {
        let len = data.len() as u64;
        if let Some(p) = existing
            && p.size == len
            && ETag::parse(&p.etag) == ETag::Md5(md5)
        {
            self.stats.reused(len);
            return Ok((p.etag.clone(), true));
        }
        let kms = self.store.put.etag_not_md5();
        let mut attempt = 0;
        loop {
            let failure = match self
                .store
                .upload_part(
                    &self.rel,
                    &self.upload_id,
                    number,
                    data.clone(),
                    &md5,
                    sum,
                    self.stats.clone(),
                )
                .await
            {
                Ok((etag, answered)) => {
                    let ok = kms || matches!(ETag::parse(&etag), ETag::Md5(d) if d == md5);
                    let opaque = !matches!(ETag::parse(&etag), ETag::Md5(_));
                    if opaque
                        && sum.is_none()
                        && self.store.put.checksum == ChecksumMode::Auto
                        && self.store.put.learn_opaque_etags()
                    {
                        // This upload goes on without checksums (its parts are under way);
                        // the files after it carry them.
                        tracing::info!(
                            "{}: the server's ETags are not MD5s: uploads carry checksums from the next file on",
                            self.rel
                        );
                    }
                    let ours = sum.cloned().map(ObjectChecksum::Full);
                    let stored = ours.as_ref().and_then(|o| checksum_answered(&answered, o));
                    if (ok || opaque) && stored != Some(false) {
                        return Ok((etag, false));
                    }
                    // Sent again below: these bytes do not count twice.
                    self.stats.unmoved(len);
                    if stored == Some(false) {
                        format!(
                            "part {number}: the server stored another checksum than the one we sent"
                        )
                    } else {
                        format!(
                            "part {number}: server ETag {etag} is not the MD5 we sent ({})",
                            hex::encode(md5)
                        )
                    }
                }
                Err(e) if is_bad_digest(&e) => format!("part {number}: {e}"),
                Err(e) => return Err(e.into()),
            };
            if attempt >= self.retry.again {
                return Err(UploadError::Integrity {
                    path: self.rel.clone(),
                    message: failure,
                });
            }
            attempt += 1;
            self.retry.pause(&self.stats, &self.rel, &failure).await;
        }
    }

    /// Complete the upload from its parts' ETags (in part order) and prove the object by the
    /// composite of `md5s` and, when the parts carried checksums (`sums`, with each part's
    /// length), by the object's checksum the server stored. An object that fails the proof is
    /// deleted, so no later run skips it. Returns the proof and the HEAD made when the answer
    /// had no ETag.
    pub async fn complete(
        &self,
        etags: Vec<String>,
        md5s: &[Md5Digest],
        sums: Option<&[(Checksum, u64)]>,
    ) -> Result<(Proof, Written, Option<Head>), UploadError> {
        let whole = sums.and_then(ObjectChecksum::of_parts);
        let parts: Option<Vec<Checksum>> = sums.map(|s| s.iter().map(|(c, _)| c.clone()).collect());
        let checksums = parts.as_deref().zip(whole.as_ref());
        let (mut written, headed) = self.finish_with(etags, checksums).await?;
        let etag = prove_composite(&written, md5s, self.store.put.etag_not_md5());
        ask_stored(&self.store, &self.rel, &mut written, whole.as_ref(), &etag).await?;
        match with_checksum(etag, &written, whole.as_ref()) {
            Ok(p) => Ok((p, written, headed)),
            Err(message) => {
                let _ = self.store.delete(&self.rel).await;
                Err(UploadError::Integrity {
                    path: self.rel.clone(),
                    message,
                })
            }
        }
    }

    /// Complete the upload from its parts' ETags (in part order), without a proof: for parts
    /// the server copied, whose MD5s we never saw. Returns what was written (its ETag, from
    /// a HEAD when the answer had none) and that HEAD.
    pub async fn finish(&self, etags: Vec<String>) -> Result<(Written, Option<Head>), UploadError> {
        self.finish_with(etags, None).await
    }

    async fn finish_with(
        &self,
        etags: Vec<String>,
        checksums: Option<(&[Checksum], &ObjectChecksum)>,
    ) -> Result<(Written, Option<Head>), UploadError> {
        if etags.iter().any(String::is_empty) {
            return Err(UploadError::Internal {
                path: self.rel.clone(),
                message: "a part has no ETag".into(),
            });
        }
        let parts: Vec<(u32, String)> = (1..).zip(etags).collect();
        let written = self
            .store
            .complete_multipart(&self.rel, &self.upload_id, &parts, checksums)
            .await?;
        Ok(with_etag(&self.store, &self.rel, written).await?)
    }

    /// Abort the upload (its parts are freed); failures are ignored: `cleanup` and the next
    /// run's resume find what is left.
    pub async fn abort(&self) {
        let _ = self
            .store
            .abort_multipart(&self.store.key(&self.rel), &self.upload_id)
            .await;
    }

    /// After `err`: abort unless it was temporary (then the next run resumes the upload).
    pub async fn end_after(&self, err: &UploadError) {
        if !matches!(err, UploadError::S3(s) if s.is_temporary()) {
            self.abort().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::etag::md5_of;

    #[test]
    fn proofs() {
        let md5 = md5_of(b"data");
        let w = |etag: String, kms: bool| Written {
            etag,
            etag_not_md5: kms,
            checksums: Vec::new(),
        };
        let hex = hex::encode(md5);
        assert_eq!(
            prove_single(&w(format!("\"{hex}\""), false), &md5, false),
            Ok(Proof::Verified)
        );
        assert!(
            prove_single(
                &w(format!("\"{}\"", hex::encode(md5_of(b"x"))), false),
                &md5,
                false
            )
            .is_err()
        );
        assert_eq!(
            prove_single(&w("\"zz\"".into(), false), &md5, false),
            Ok(Proof::NotComparable)
        );
        assert_eq!(
            prove_single(&w(format!("\"{hex}\""), true), &md5, false),
            Ok(Proof::NotComparable)
        );
        assert_eq!(
            prove_single(&w(String::new(), false), &md5, true),
            Ok(Proof::NotComparable)
        );

        let parts = [md5_of(b"a"), md5_of(b"b")];
        let good = ETag::composite(&parts).to_string();
        assert_eq!(
            prove_composite(&w(good, false), &parts, false),
            Ok(Proof::Verified)
        );
        let bad = ETag::composite(&parts[..1]).to_string();
        assert!(prove_composite(&w(bad, false), &parts, false).is_err());
        assert_eq!(
            prove_composite(&w(hex, false), &parts, false),
            Ok(Proof::NotComparable)
        );
    }
}
