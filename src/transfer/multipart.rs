//! Writes that prove themselves: one PUT ([`put_proven`]), or one multipart upload as a value: created (or adopted from an interrupted run), fed parts,
//! then completed and proven, or aborted. Local files (`upload`) and objects streamed from
//! another bucket (`relay`) feed the same session, so both send parts with Content-MD5,
//! check every part's ETag, retry integrity failures the same way and prove the completed
//! object by its composite ETag.

use std::sync::Arc;
use std::time::Duration;

use crate::read::ReadError;
use crate::read::etag::{ETag, Md5Digest, PartError};
use crate::report::Stats;
use crate::s3::{Head, ObjectMeta, PartInfo, S3Error, Store, Written};

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
    /// The server's ETag is not an MD5 (SSE-KMS, SSE-C, or a gateway's own): `check` must
    /// download to verify.
    NotComparable,
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

/// Upload `data` (whose MD5 is `md5`) in one PUT with Content-MD5 and prove it: the ETag
/// must be that MD5. A bad digest or another ETag is retried; an object that still fails is
/// deleted, so no later run skips it.
pub async fn put_proven(
    store: &Store,
    stats: &Arc<Stats>,
    retry: Retry,
    rel: &str,
    data: bytes::Bytes,
    md5: Md5Digest,
    meta: &ObjectMeta,
) -> Result<Proof, UploadError> {
    let kms = store.put.etag_not_md5();
    let len = data.len() as u64;
    let mut attempt = 0;
    loop {
        let sent = store.put_object(rel, data.clone(), &md5, meta, stats.clone());
        let result = match sent.await {
            Ok(w) => with_etag(store, rel, w).await.map(|(w, _)| w),
            Err(e) => Err(e),
        };
        let failure = match result {
            Ok(w) => match prove_single(&w, &md5, kms) {
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
}

impl Session {
    /// Start a new upload of `rel`, its metadata recording `part_size`.
    pub async fn create(
        store: Arc<Store>,
        stats: Arc<Stats>,
        retry: Retry,
        rel: &str,
        meta: &ObjectMeta,
        part_size: u64,
    ) -> Result<Session, S3Error> {
        let upload_id = store.create_multipart(rel, meta, part_size).await?;
        Ok(Session::adopt(store, stats, retry, rel, upload_id))
    }

    /// Go on with an upload an earlier run started.
    pub fn adopt(
        store: Arc<Store>,
        stats: Arc<Stats>,
        retry: Retry,
        rel: &str,
        upload_id: String,
    ) -> Session {
        Session {
            store,
            stats,
            retry,
            rel: rel.to_string(),
            upload_id,
        }
    }

    /// Send part `number` (`data`, whose MD5 is `md5`) unless `existing` (the part an
    /// interrupted upload already holds) has these very bytes. The returned ETag must be the
    /// MD5 sent; a bad digest or another ETag is retried. Returns the part's ETag and whether
    /// it was reused.
    pub async fn send(
        &self,
        number: u32,
        data: bytes::Bytes,
        md5: Md5Digest,
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
                    self.stats.clone(),
                )
                .await
            {
                Ok(etag) => {
                    let ok = kms || matches!(ETag::parse(&etag), ETag::Md5(d) if d == md5);
                    let opaque = !matches!(ETag::parse(&etag), ETag::Md5(_));
                    if ok || opaque {
                        return Ok((etag, false));
                    }
                    // Sent again below: these bytes do not count twice.
                    self.stats.unmoved(len);
                    format!(
                        "part {number}: server ETag {etag} is not the MD5 we sent ({})",
                        hex::encode(md5)
                    )
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
    /// composite of `md5s`. An object that fails the proof is deleted, so no later run skips
    /// it. Returns the proof and the HEAD made when the answer had no ETag.
    pub async fn complete(
        &self,
        etags: Vec<String>,
        md5s: &[Md5Digest],
    ) -> Result<(Proof, Written, Option<Head>), UploadError> {
        let (written, headed) = self.finish(etags).await?;
        match prove_composite(&written, md5s, self.store.put.etag_not_md5()) {
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
        if etags.iter().any(String::is_empty) {
            return Err(UploadError::Internal {
                path: self.rel.clone(),
                message: "a part has no ETag".into(),
            });
        }
        let parts: Vec<(u32, String)> = (1..).zip(etags).collect();
        let written = self
            .store
            .complete_multipart(&self.rel, &self.upload_id, &parts)
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
