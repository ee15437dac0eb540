//! [`Store`]: one bucket and prefix with a client, and one method per S3 call s3ferry makes.
//! Requests are built here and nowhere else, so every upload carries the same headers
//! (Content-MD5, Content-Type, ACL, SSE, storage class) and every call is counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
    ObjectCannedAcl, ServerSideEncryption, StorageClass,
};
use bytes::Bytes;

use crate::config::remote::S3Path;
use crate::read::checksum::{Algorithm, Checksum, ObjectChecksum};
use crate::read::etag::Md5Digest;
use crate::report::class::Class;

use super::error::{classify, find_transport_as, transport};
use super::types::{
    Answered, Head, ListPage, Listed, META_MTIME, ObjectMeta, PartInfo, PutOptions, UploadInfo,
    Written, check_page, content_md5, format_mtime,
};
use super::{S3Error, body, http, timeout};
use crate::report::requests::{RequestCounts, bump};

/// One bucket and prefix, with a client.
pub struct Store {
    client: Client,
    pub path: S3Path,
    pub put: PutOptions,
    pub requests: Arc<RequestCounts>,
    /// `--timeout`, from which each request's ceiling is scaled ([`timeout::ceiling`]).
    idle: Option<Duration>,
}

/// An object's bytes as they stream in, within the download's ceiling.
pub struct Body {
    stream: ByteStream,
    key: String,
    deadline: Option<tokio::time::Instant>,
}

impl Body {
    /// The next chunk; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, S3Error>> {
        let next = self.stream.next();
        let r = match self.deadline {
            Some(d) => match tokio::time::timeout_at(d, next).await {
                Ok(r) => r,
                Err(_) => {
                    return Some(Err(S3Error::Transport {
                        op: "get",
                        key: self.key.clone(),
                        message: format!("the download did not finish within {}", timeout::CEILING),
                        class: Class::Temporary,
                    }));
                }
            },
            None => next.await,
        }?;
        Some(r.map_err(|e| {
            // Mid-body: the answer broke off (the connection closed, reset, or timed out).
            let t = find_transport_as("the download broke off", &e).unwrap_or_else(|| {
                http::TransportError {
                    kind: crate::report::class::TransportKind::Broken,
                    message: "the download broke off".into(),
                }
            });
            transport("get", self.key.clone(), t)
        }))
    }
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn kms_or_customer(sse: Option<&ServerSideEncryption>, customer: Option<&str>) -> bool {
    customer.is_some() || sse.is_some_and(|s| s.as_str().starts_with("aws:kms"))
}

/// The headers every object we write carries, on a PutObject or CreateMultipartUpload builder
/// (two SDK types with the same setters).
macro_rules! object_headers {
    ($req:expr, $put:expr, $meta:expr, $part_size:expr) => {
        $req.content_type(
            $meta
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        )
        .set_metadata(Some($meta.headers($part_size)))
        .set_acl($put.acl.as_deref().map(ObjectCannedAcl::from))
        .set_server_side_encryption($put.sse.as_deref().map(ServerSideEncryption::from))
        .set_ssekms_key_id($put.sse_kms_key_id.clone())
        .set_storage_class($put.storage_class.as_deref().map(StorageClass::from))
    };
}

/// Put `sum` in its header (`x-amz-checksum-<algorithm>`) on a request builder; PutObject,
/// UploadPart and CompleteMultipartUpload have the same setters. Always a header, never an
/// aws-chunked trailer: the value is computed before the request is sent, and Ceph and
/// several gateways refuse trailers.
macro_rules! with_checksum {
    ($req:expr, $sum:expr) => {{
        let req = $req;
        match $sum {
            None => req,
            Some((alg, value)) => match alg {
                Algorithm::Crc32c => req.checksum_crc32_c(value),
                Algorithm::Crc64nvme => req.checksum_crc64_nvme(value),
                Algorithm::Sha256 => req.checksum_sha256(value),
            },
        }
    }};
}

/// The checksums an answer carries (PutObject, UploadPart, CompleteMultipartUpload and
/// HeadObject answers have the same getters).
macro_rules! answered {
    ($out:expr) => {{
        let out = &$out;
        let mut a: Answered = Vec::new();
        for (alg, v) in [
            (Algorithm::Crc32c, out.checksum_crc32_c()),
            (Algorithm::Crc64nvme, out.checksum_crc64_nvme()),
            (Algorithm::Sha256, out.checksum_sha256()),
        ] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                a.push((alg, v.to_string()));
            }
        }
        a
    }};
}

/// The SSE-C headers (`x-amz-server-side-encryption-customer-*`) on a request builder: every
/// request that writes or reads an object's bytes or metadata carries the key.
macro_rules! with_sse_c {
    ($req:expr, $c:expr) => {{
        let req = $req;
        match $c {
            None => req,
            Some(c) => req
                .sse_customer_algorithm(&c.algorithm)
                .sse_customer_key(c.key_base64.expose())
                .sse_customer_key_md5(&c.key_md5),
        }
    }};
}

/// The SSE-C headers for a copy's source (`x-amz-copy-source-server-side-encryption-customer-*`).
macro_rules! with_source_sse_c {
    ($req:expr, $c:expr) => {{
        let req = $req;
        match $c {
            None => req,
            Some(c) => req
                .copy_source_sse_customer_algorithm(&c.algorithm)
                .copy_source_sse_customer_key(c.key_base64.expose())
                .copy_source_sse_customer_key_md5(&c.key_md5),
        }
    }};
}

/// S3's name for an algorithm.
fn sdk_algorithm(alg: Algorithm) -> aws_sdk_s3::types::ChecksumAlgorithm {
    use aws_sdk_s3::types::ChecksumAlgorithm as A;
    match alg {
        Algorithm::Crc32c => A::Crc32C,
        Algorithm::Crc64nvme => A::Crc64Nvme,
        Algorithm::Sha256 => A::Sha256,
    }
}

/// A multipart object's checksum type for `alg`.
fn sdk_type(alg: Algorithm) -> aws_sdk_s3::types::ChecksumType {
    if alg.full_object() {
        aws_sdk_s3::types::ChecksumType::FullObject
    } else {
        aws_sdk_s3::types::ChecksumType::Composite
    }
}

/// An ETag to pin a request to; none for an empty one (a listing without ETags).
fn pin(etag: Option<&str>) -> Option<String> {
    etag.filter(|e| !e.trim_matches('"').is_empty())
        .map(String::from)
}

/// A failed precondition (`If-Match`, `x-amz-copy-source-if-match`): the object is no longer
/// the version we listed.
fn changed(e: S3Error, key: &str) -> S3Error {
    match e {
        S3Error::Service { status: 412, .. } => S3Error::Changed {
            key: key.to_string(),
        },
        e => e,
    }
}

impl Store {
    pub fn new(
        client: Client,
        path: S3Path,
        put: PutOptions,
        requests: Arc<RequestCounts>,
        idle: Option<Duration>,
    ) -> Store {
        Store {
            client,
            path,
            put,
            requests,
            idle,
        }
    }

    /// A per-request override of the attempt timeout, for a request that sends `bytes`.
    fn ceiling(&self, bytes: u64) -> aws_sdk_s3::config::Builder {
        let mut t = TimeoutConfig::builder();
        if let Some(d) = timeout::ceiling(self.idle, bytes) {
            t = t.operation_attempt_timeout(d);
        }
        aws_sdk_s3::config::Builder::new().timeout_config(t.build())
    }

    /// The full key for a path relative to the prefix.
    pub fn key(&self, rel: &str) -> String {
        format!("{}{}", self.path.prefix, rel)
    }

    fn bucket(&self) -> &str {
        &self.path.bucket
    }

    /// `bucket/prefix`, as messages name a listing.
    pub fn shown(&self, prefix: &str) -> String {
        format!("{}/{prefix}", self.path.bucket)
    }

    /// One page of ListObjectsV2 under `prefix` (absolute key prefix), after `start_after`
    /// (exclusive) when given. With `delimited`, keys are grouped at the next `/` and the groups
    /// come back as common prefixes.
    pub async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<String>,
        delimited: bool,
    ) -> Result<ListPage, S3Error> {
        bump(&self.requests.list);
        let out = self
            .client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(prefix)
            .set_start_after(start_after.map(String::from))
            .set_continuation_token(token)
            .set_delimiter(delimited.then(|| "/".to_string()))
            .send()
            .await
            .map_err(|e| classify("list", self.bucket(), &self.shown(prefix), e))?;
        let objects: Vec<Listed> = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().unwrap_or_default().to_string(),
                    last_modified: to_system_time(o.last_modified()),
                })
            })
            .collect();
        let prefixes: Vec<String> = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(String::from))
            .collect();
        let token = out
            .next_continuation_token()
            .filter(|t| !t.is_empty())
            .map(String::from);
        let next = match (out.is_truncated().unwrap_or(false), token) {
            (true, Some(t)) => Some(t),
            (true, None) => {
                return Err(S3Error::protocol(
                    "list",
                    &self.shown(prefix),
                    "a page says more follow (IsTruncated) but gives no continuation token",
                ));
            }
            (false, _) => None,
        };
        check_page(prefix, start_after, &objects, &prefixes)
            .map_err(|message| S3Error::protocol("list", &self.shown(prefix), message))?;
        Ok(ListPage {
            objects,
            prefixes,
            next,
        })
    }

    /// Single-request upload with Content-MD5, and the checksum `sum` when given.
    /// PUT `body` as `rel`; its bytes are counted into `tally` as they are sent (all of them
    /// when this returns Ok, none when it fails).
    pub async fn put_object(
        &self,
        rel: &str,
        body: Bytes,
        md5: &Md5Digest,
        sum: Option<&Checksum>,
        meta: &ObjectMeta,
        tally: Arc<dyn body::Tally>,
    ) -> Result<Written, S3Error> {
        let key = self.key(rel);
        bump(&self.requests.put);
        let len = body.len() as u64;
        let p = &self.put;
        let (counted, stream) = self.counted(body, tally);
        let req = self
            .client
            .put_object()
            .bucket(self.bucket())
            .key(&key)
            .body(stream)
            .content_length(len as i64)
            .content_md5(content_md5(md5));
        // `x-amz-sdk-checksum-algorithm` too, as AWS's SDKs send it (moto stores a checksum
        // only with it); the SDK computes nothing itself when the value is set.
        let req = with_checksum!(req, sum.map(|c| (c.algorithm, c.base64())))
            .set_checksum_algorithm(sum.map(|c| sdk_algorithm(c.algorithm)));
        let req = with_sse_c!(object_headers!(req, p, meta, None), &p.sse_customer)
            .customize()
            .config_override(self.ceiling(len));
        let req = if p.sign_payload {
            req
        } else {
            req.disable_payload_signing()
        };
        let out = req.send().await;
        counted.settle(out.is_ok());
        let out = out.map_err(|e| classify("put", self.bucket(), &key, e))?;
        self.requests.bytes_sent.fetch_add(len, Ordering::Relaxed);
        Ok(Written {
            etag: out.e_tag().unwrap_or_default().to_string(),
            etag_not_md5: kms_or_customer(
                out.server_side_encryption(),
                out.sse_customer_algorithm(),
            ),
            checksums: answered!(out),
        })
    }

    /// Start a multipart upload of `rel`, whose metadata records `part_size`; with `checksum`,
    /// its parts carry that checksum and the object gets one (full-object for the CRCs,
    /// composite for SHA-256).
    pub async fn create_multipart(
        &self,
        rel: &str,
        meta: &ObjectMeta,
        part_size: u64,
        checksum: Option<Algorithm>,
    ) -> Result<String, S3Error> {
        let key = self.key(rel);
        bump(&self.requests.create_multipart);
        let p = &self.put;
        let req = self
            .client
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(&key)
            .set_checksum_algorithm(checksum.map(sdk_algorithm))
            .set_checksum_type(checksum.map(sdk_type));
        let out = with_sse_c!(
            object_headers!(req, p, meta, Some(part_size)),
            &p.sse_customer
        )
        .send()
        .await
        .map_err(|e| classify("create multipart upload", self.bucket(), &key, e))?;
        out.upload_id()
            .map(String::from)
            .ok_or_else(|| S3Error::protocol("create multipart upload", &key, "no UploadId"))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part(
        &self,
        rel: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
        md5: &Md5Digest,
        sum: Option<&Checksum>,
        tally: Arc<dyn body::Tally>,
    ) -> Result<(String, Answered), S3Error> {
        let key = self.key(rel);
        bump(&self.requests.upload_part);
        let len = body.len() as u64;
        let (counted, stream) = self.counted(body, tally);
        let req = self
            .client
            .upload_part()
            .bucket(self.bucket())
            .key(&key)
            .upload_id(upload_id)
            .part_number(number as i32)
            .body(stream)
            .content_length(len as i64)
            .content_md5(content_md5(md5));
        let req = with_checksum!(req, sum.map(|c| (c.algorithm, c.base64())))
            .set_checksum_algorithm(sum.map(|c| sdk_algorithm(c.algorithm)));
        let req = with_sse_c!(req, &self.put.sse_customer)
            .customize()
            .config_override(self.ceiling(len));
        let req = if self.put.sign_payload {
            req
        } else {
            req.disable_payload_signing()
        };
        let out = req.send().await;
        counted.settle(out.is_ok());
        let out = out.map_err(|e| classify("upload part", self.bucket(), &key, e))?;
        self.requests.bytes_sent.fetch_add(len, Ordering::Relaxed);
        Ok((out.e_tag().unwrap_or_default().to_string(), answered!(out)))
    }

    /// A request body whose bytes go to `tally` as they are sent; with signed payloads,
    /// whose hash the SDK takes over the whole buffer, when the request succeeded.
    fn counted(&self, data: Bytes, tally: Arc<dyn body::Tally>) -> (body::Counted, ByteStream) {
        if self.put.sign_payload {
            body::Counted::at_end(data, tally)
        } else {
            body::Counted::new(data, tally)
        }
    }

    /// Complete an upload from its parts' ETags (in part order). With `checksums` (the parts'
    /// checksums, in the same order, and the object's), each part is named with its checksum
    /// and a full-object checksum is sent for the server to check against the whole object.
    pub async fn complete_multipart(
        &self,
        rel: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        checksums: Option<(&[Checksum], &ObjectChecksum)>,
    ) -> Result<Written, S3Error> {
        let key = self.key(rel);
        bump(&self.requests.complete);
        let part_sums = checksums.map(|(p, _)| p);
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .enumerate()
                    .map(|(i, (n, etag))| {
                        let b = CompletedPart::builder().part_number(*n as i32).e_tag(etag);
                        let sum = part_sums.and_then(|s| s.get(i));
                        with_checksum!(b, sum.map(|c| (c.algorithm, c.base64()))).build()
                    })
                    .collect(),
            ))
            .build();
        let whole = checksums.and_then(|(_, whole)| match whole {
            ObjectChecksum::Full(c) => Some(c),
            ObjectChecksum::Composite { .. } => None,
        });
        let req = self
            .client
            .complete_multipart_upload()
            .bucket(self.bucket())
            .key(&key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .set_checksum_type(whole.map(|c| sdk_type(c.algorithm)));
        let req = with_checksum!(req, whole.map(|c| (c.algorithm, c.base64())));
        let out = with_sse_c!(req, &self.put.sse_customer)
            .send()
            .await
            .map_err(|e| classify("complete multipart upload", self.bucket(), &key, e))?;
        Ok(Written {
            etag: out.e_tag().unwrap_or_default().to_string(),
            etag_not_md5: kms_or_customer(out.server_side_encryption(), None),
            checksums: answered!(out),
        })
    }

    /// `bucket/key` of `src`'s object `rel`, as `x-amz-copy-source` wants it: the key
    /// percent-encoded, its slashes kept.
    fn copy_source(src: &Store, rel: &str) -> String {
        const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        let key = src.key(rel);
        format!(
            "{}/{}",
            src.bucket(),
            percent_encoding::utf8_percent_encode(&key, KEEP)
        )
    }

    /// Copy `src`'s object `src_rel` (the version with ETag `if_match`, [`S3Error::Changed`]
    /// otherwise) to `rel` in one server-side request, its metadata and content type with it.
    /// Objects up to 5 GiB; `size` sets the request's time ceiling.
    pub async fn copy_object(
        &self,
        rel: &str,
        src: &Store,
        src_rel: &str,
        if_match: &str,
        size: u64,
    ) -> Result<Written, S3Error> {
        self.copy(rel, src, src_rel, if_match, size, None).await
    }

    /// Give the object `rel` (the version with ETag `if_match`, [`S3Error::Changed`] otherwise;
    /// `head` is what a HEAD of it said) the mtime `mtime`, its bytes, other metadata and
    /// content type unchanged: a server-side copy onto itself that replaces the metadata.
    /// Objects up to 5 GiB; `size` sets the request's time ceiling.
    pub async fn set_mtime(
        &self,
        rel: &str,
        head: &Head,
        if_match: &str,
        mtime: SystemTime,
        size: u64,
    ) -> Result<Written, S3Error> {
        let mut metadata = head.metadata.clone();
        metadata.insert(META_MTIME.to_string(), format_mtime(mtime));
        let pinned = if if_match.trim_matches('"').is_empty() {
            head.etag.as_str()
        } else {
            if_match
        };
        let replaced = (metadata, head.content_type.clone());
        self.copy(rel, self, rel, pinned, size, Some(replaced))
            .await
    }

    /// CopyObject, pinned to `if_match`, with our ACL, encryption and storage class: the
    /// source's metadata carried (`replace` is `None`), or replaced by these user metadata and
    /// content type.
    async fn copy(
        &self,
        rel: &str,
        src: &Store,
        src_rel: &str,
        if_match: &str,
        size: u64,
        replace: Option<(HashMap<String, String>, Option<String>)>,
    ) -> Result<Written, S3Error> {
        use aws_sdk_s3::types::MetadataDirective;
        let key = self.key(rel);
        bump(&self.requests.copy);
        let p = &self.put;
        let req = self
            .client
            .copy_object()
            .bucket(self.bucket())
            .key(&key)
            .copy_source(Self::copy_source(src, src_rel))
            .set_copy_source_if_match(pin(Some(if_match)));
        let req = with_sse_c!(req, &p.sse_customer);
        let req = with_source_sse_c!(req, &src.put.sse_customer);
        let req = match replace {
            None => req.metadata_directive(MetadataDirective::Copy),
            Some((metadata, content_type)) => req
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(Some(metadata))
                .set_content_type(content_type),
        };
        // The copy gets the run's checksum, computed by the server from the source's bytes.
        let out = req
            .set_checksum_algorithm(p.checksum().map(sdk_algorithm))
            .set_acl(p.acl.as_deref().map(ObjectCannedAcl::from))
            .set_server_side_encryption(p.sse.as_deref().map(ServerSideEncryption::from))
            .set_ssekms_key_id(p.sse_kms_key_id.clone())
            .set_storage_class(p.storage_class.as_deref().map(StorageClass::from))
            .customize()
            .config_override(self.ceiling(size))
            .send()
            .await
            .map_err(|e| changed(classify("copy", self.bucket(), &key, e), &key))?;
        Ok(Written {
            etag: out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .unwrap_or_default()
                .to_string(),
            etag_not_md5: kms_or_customer(
                out.server_side_encryption(),
                out.sse_customer_algorithm(),
            ),
            checksums: out
                .copy_object_result()
                .map(|r| answered!(r))
                .unwrap_or_default(),
        })
    }

    /// Copy bytes `start..end` of `src`'s object `src_rel` (pinned to `if_match`) into part
    /// `number` of an upload, server-side. Returns the part's ETag.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        rel: &str,
        upload_id: &str,
        number: u32,
        src: &Store,
        src_rel: &str,
        (start, end): (u64, u64),
        if_match: &str,
    ) -> Result<String, S3Error> {
        let key = self.key(rel);
        bump(&self.requests.copy);
        let req = self
            .client
            .upload_part_copy()
            .bucket(self.bucket())
            .key(&key)
            .upload_id(upload_id)
            .part_number(number as i32)
            .copy_source(Self::copy_source(src, src_rel))
            .copy_source_range(format!("bytes={start}-{}", end.max(start + 1) - 1))
            .set_copy_source_if_match(pin(Some(if_match)));
        let req = with_sse_c!(req, &self.put.sse_customer);
        let out = with_source_sse_c!(req, &src.put.sse_customer)
            .customize()
            .config_override(self.ceiling(end - start))
            // The request has no body; Ceph RGW refuses it (411) without saying so.
            .mutate_request(|r| {
                if r.headers().get("content-length").is_none() {
                    r.headers_mut().insert("content-length", "0");
                }
            })
            .send()
            .await
            .map_err(|e| changed(classify("upload part copy", self.bucket(), &key, e), &key))?;
        Ok(out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .unwrap_or_default()
            .to_string())
    }

    /// Abort an upload by absolute key.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        bump(&self.requests.abort);
        match self
            .client
            .abort_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| classify("abort multipart upload", self.bucket(), key, e))
        {
            Ok(_) | Err(S3Error::NoSuchUpload { .. }) | Err(S3Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// All in-progress uploads whose key starts with `key_prefix` (absolute).
    pub async fn list_uploads(&self, key_prefix: &str) -> Result<Vec<UploadInfo>, S3Error> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            bump(&self.requests.list_uploads);
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(self.bucket())
                .prefix(key_prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| classify("list multipart uploads", self.bucket(), key_prefix, e))?;
            for u in page.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                    out.push(UploadInfo {
                        key: k.to_string(),
                        upload_id: id.to_string(),
                        initiated: u.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
                        checksum: u.checksum_algorithm().map(|a| a.as_str().to_string()),
                    });
                }
            }
            let next_key = page
                .next_key_marker()
                .filter(|s| !s.is_empty())
                .map(String::from);
            let next_id = page
                .next_upload_id_marker()
                .filter(|s| !s.is_empty())
                .map(String::from);
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            if next_key.is_none() && next_id.is_none() {
                return Err(S3Error::protocol(
                    "list multipart uploads",
                    key_prefix,
                    "a page says more follow (IsTruncated) but gives no markers",
                ));
            }
            if next_key == key_marker && next_id == id_marker {
                return Err(S3Error::protocol(
                    "list multipart uploads",
                    key_prefix,
                    "the listing does not advance (the same markers again)",
                ));
            }
            key_marker = next_key;
            id_marker = next_id;
        }
        Ok(out)
    }

    /// All parts of an in-progress upload.
    pub async fn list_parts(&self, rel: &str, upload_id: &str) -> Result<Vec<PartInfo>, S3Error> {
        let key = self.key(rel);
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            bump(&self.requests.list_parts);
            let req = self
                .client
                .list_parts()
                .bucket(self.bucket())
                .key(&key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone());
            let page = with_sse_c!(req, &self.put.sse_customer)
                .send()
                .await
                .map_err(|e| classify("list parts", self.bucket(), &key, e))?;
            for p in page.parts() {
                if let Some(n) = p.part_number() {
                    out.push(PartInfo {
                        number: n.max(0) as u32,
                        size: p.size().unwrap_or(0).max(0) as u64,
                        etag: p.e_tag().unwrap_or_default().to_string(),
                    });
                }
            }
            let next = page
                .next_part_number_marker()
                .filter(|s| !s.is_empty())
                .map(String::from);
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            if next.is_none() || next == marker {
                return Err(S3Error::protocol(
                    "list parts",
                    &key,
                    "a page says more follow but the part marker does not advance",
                ));
            }
            marker = next;
        }
        out.sort_by_key(|p| p.number);
        Ok(out)
    }

    /// HEAD an object, optionally asking for one part's length.
    pub async fn head(&self, rel: &str, part_number: Option<u32>) -> Result<Head, S3Error> {
        self.head_as(rel, part_number, false, None).await
    }

    /// HEAD an object in checksum mode (`x-amz-checksum-mode: ENABLED`): [`Head::checksums`]
    /// holds what the server stored, where it stores checksums.
    pub async fn head_checksums(&self, rel: &str) -> Result<Head, S3Error> {
        self.head_as(rel, None, true, None).await
    }

    /// [`Store::head_checksums`] of the version with ETag `if_match` ([`S3Error::Changed`]
    /// otherwise).
    pub async fn head_checksums_of(&self, rel: &str, if_match: &str) -> Result<Head, S3Error> {
        self.head_as(rel, None, true, Some(if_match)).await
    }

    async fn head_as(
        &self,
        rel: &str,
        part_number: Option<u32>,
        checksums: bool,
        if_match: Option<&str>,
    ) -> Result<Head, S3Error> {
        let key = self.key(rel);
        bump(&self.requests.head);
        let out = self
            .client
            .head_object()
            .bucket(self.bucket())
            .key(&key)
            .set_part_number(part_number.map(|n| n as i32))
            .set_checksum_mode(checksums.then_some(aws_sdk_s3::types::ChecksumMode::Enabled))
            .set_if_match(pin(if_match));
        let out = with_sse_c!(out, &self.put.sse_customer)
            .send()
            .await
            .map_err(|e| changed(classify("head", self.bucket(), &key, e), &key))?;
        Ok(Head {
            content_length: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().unwrap_or_default().to_string(),
            metadata: out.metadata().cloned().unwrap_or_default(),
            content_type: out.content_type().map(String::from),
            etag_not_md5: kms_or_customer(
                out.server_side_encryption(),
                out.sse_customer_algorithm(),
            ),
            checksums: answered!(out),
        })
    }

    /// HEAD part 1 of an object: its length, with the object's metadata. `None` when the
    /// server does not take `partNumber` (it answers 501, 400 or 416).
    pub async fn head_part_one(&self, rel: &str) -> Result<Option<Head>, S3Error> {
        match self.head(rel, Some(1)).await {
            Ok(h) => Ok(Some(h)),
            Err(
                S3Error::NotImplemented { .. }
                | S3Error::Service {
                    status: 400 | 416, ..
                },
            ) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether an object exists (one HEAD).
    pub async fn exists(&self, rel: &str) -> Result<bool, S3Error> {
        match self.head(rel, None).await {
            Ok(_) => Ok(true),
            Err(S3Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stream an object's bytes.
    pub async fn get(&self, rel: &str) -> Result<Body, S3Error> {
        Ok(self.get_range(rel, 0, 0, None).await?.0)
    }

    /// Stream bytes `start..end` of an object (a ranged GET; the whole object when the range
    /// is empty), with what the response says of the object: its ETag, user metadata and
    /// encryption (`content_length` is the range's). With `if_match`, only from the object
    /// version with that ETag ([`S3Error::Changed`] otherwise).
    pub async fn get_range(
        &self,
        rel: &str,
        start: u64,
        end: u64,
        if_match: Option<&str>,
    ) -> Result<(Body, Head), S3Error> {
        let key = self.key(rel);
        bump(&self.requests.get);
        let range = (end > start).then(|| format!("bytes={start}-{}", end - 1));
        let out = self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(&key)
            .set_range(range)
            .set_if_match(pin(if_match));
        let out = with_sse_c!(out, &self.put.sse_customer)
            .send()
            .await
            .map_err(|e| changed(classify("get", self.bucket(), &key, e), &key))?;
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        let head = Head {
            content_length: size,
            etag: out.e_tag().unwrap_or_default().to_string(),
            metadata: out.metadata().cloned().unwrap_or_default(),
            content_type: out.content_type().map(String::from),
            etag_not_md5: kms_or_customer(
                out.server_side_encryption(),
                out.sse_customer_algorithm(),
            ),
            checksums: answered!(out),
        };
        let body = Body {
            stream: out.body,
            deadline: timeout::ceiling(self.idle, size).map(|c| tokio::time::Instant::now() + c),
            key,
        };
        Ok((body, head))
    }

    /// Delete one object (relative key). DeleteObject rather than DeleteObjects: the batch call
    /// needs a body checksum that older MinIO/Ceph only accept as Content-MD5.
    pub async fn delete(&self, rel: &str) -> Result<(), S3Error> {
        let key = self.key(rel);
        bump(&self.requests.delete);
        self.client
            .delete_object()
            .bucket(self.bucket())
            .key(&key)
            .send()
            .await
            .map_err(|e| classify("delete", self.bucket(), &key, e))?;
        Ok(())
    }

    pub async fn create_bucket(&self, location_constraint: Option<&str>) -> Result<(), S3Error> {
        let cfg = location_constraint.filter(|l| !l.is_empty()).map(|l| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(l))
                .build()
        });
        match self
            .client
            .create_bucket()
            .bucket(self.bucket())
            .set_create_bucket_configuration(cfg)
            .send()
            .await
            .map_err(|e| classify("create bucket", self.bucket(), "", e))
        {
            Ok(_) => Ok(()),
            Err(S3Error::Service { code, .. })
                if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
