//! Everything that talks to S3: building the client, one method per S3 call we make, and the one
//! function that maps SDK errors to ours (and decides whether a retry could help).
//!
//! Requests are built here and nowhere else, so every upload carries the same headers (Content-MD5,
//! Content-Type, ACL, SSE, storage class) and every call is counted. The SDK's retry layer is the
//! only one that retries transport and 5xx errors; an error returned from here is final.
//! No message produced here contains credentials or signed URLs.

pub mod body;
pub mod bwlimit;
pub mod dns;
pub mod http;
pub mod timeout;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
    ObjectCannedAcl, ServerSideEncryption, StorageClass,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use base64::Engine;
use bytes::Bytes;
use serde::Serialize;

use crate::config::remote::{Credentials, S3Path, S3Settings};
use crate::read::etag::Md5Digest;
use crate::report::class::Class;

/// User-metadata key holding the file's mtime, in rclone's format (seconds.nanoseconds).
pub const META_MTIME: &str = "mtime";
/// User-metadata key holding the part size of a multipart upload, so `check` can recompute its ETag.
pub const META_PART_SIZE: &str = "s3ferry-part-size";

/// An S3 failure, classified.
#[derive(Debug, Clone, thiserror::Error)]
pub enum S3Error {
    #[error("bucket {bucket:?} does not exist: create it first or pass --create-bucket")]
    NoSuchBucket { bucket: String },
    #[error("{op} {key:?}: access denied: check the credentials and the bucket policy")]
    AccessDenied { op: &'static str, key: String },
    #[error("{op} {key:?}: not found")]
    NotFound { op: &'static str, key: String },
    #[error("{op} {key:?}: the upload no longer exists")]
    NoSuchUpload { op: &'static str, key: String },
    #[error("{op}: not implemented by this server")]
    NotImplemented { op: &'static str },
    #[error("{op} {key:?}: {code} (HTTP {status}): {message}")]
    Service {
        op: &'static str,
        key: String,
        code: String,
        status: u16,
        message: String,
        class: Class,
    },
    #[error("{op} {key:?}: {message}")]
    Transport {
        op: &'static str,
        key: String,
        message: String,
        class: Class,
    },
    /// No credentials: none configured, and none from the environment's providers.
    #[error(
        "no credentials for bucket {bucket:?}: set access_key_id and secret_access_key (or env_auth = true) in the remote, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (--profile)"
    )]
    NoCredentials { bucket: String },
    /// A read pinned to an ETag found another version of the object (HTTP 412).
    #[error("get {key:?}: the object was replaced while it was being read: rerun")]
    Changed { key: String },
    /// The server answered, but not as S3 must: nothing it said can be trusted.
    #[error("{op} {key:?}: the server broke the S3 protocol: {message}")]
    Protocol {
        op: &'static str,
        key: String,
        message: String,
    },
}

impl S3Error {
    /// What this failure means for the run (see [`crate::report::class`]).
    pub fn class(&self) -> Class {
        match self {
            S3Error::NoSuchBucket { .. } => Class::Missing,
            S3Error::AccessDenied { .. }
            | S3Error::NotFound { .. }
            | S3Error::NoSuchUpload { .. }
            | S3Error::NotImplemented { .. } => Class::Permanent,
            S3Error::Changed { .. } => crate::report::class::SOURCE_CHANGED,
            S3Error::NoCredentials { .. } => Class::Config,
            S3Error::Service { class, .. } | S3Error::Transport { class, .. } => *class,
            S3Error::Protocol { .. } => crate::report::class::PROTOCOL,
        }
    }

    /// Whether running again later could succeed (network, throttling, 5xx).
    pub fn is_temporary(&self) -> bool {
        self.class().is_temporary()
    }

    /// A protocol violation found in what the server sent.
    pub fn protocol(op: &'static str, key: &str, message: impl Into<String>) -> S3Error {
        S3Error::Protocol {
            op,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// The transport failure inside an error, if any, as our one-line message and kind (the
/// connector's own, or one read off the I/O error beneath).
/// Whether a request failed because no credentials could be found or loaded.
fn no_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |c| c.source())
        .any(|c| c.is::<aws_credential_types::provider::error::CredentialsError>())
}

fn find_transport(err: &(dyn std::error::Error + 'static)) -> Option<http::TransportError> {
    find_transport_as("the server", err)
}

/// [`find_transport`], its message led by `what` (who failed, or what broke).
fn find_transport_as(
    what: &str,
    err: &(dyn std::error::Error + 'static),
) -> Option<http::TransportError> {
    let below_http = |c: &(dyn std::error::Error + 'static)| {
        c.is::<http::TransportError>()
            || c.is::<timeout::TimedOut>()
            || c.is::<hyper::Error>()
            || c.is::<std::io::Error>()
    };
    std::iter::successors(Some(err), |c| c.source())
        .any(below_http)
        .then(|| http::transport_error(what, err))
}

fn transport(op: &'static str, key: String, t: http::TransportError) -> S3Error {
    S3Error::Transport {
        op,
        key,
        class: crate::report::class::of_transport(t.kind),
        message: t.message,
    }
}

/// The one place SDK errors become ours.
fn classify<E>(op: &'static str, bucket: &str, key: &str, err: SdkError<E>) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let key = key.to_string();
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::TimeoutError(_) => {
            return S3Error::Transport {
                op,
                key,
                message: format!("no complete answer within {}", timeout::CEILING),
                class: Class::Temporary,
            };
        }
        SdkError::DispatchFailure(_) if no_credentials(&err) => {
            return S3Error::NoCredentials {
                bucket: bucket.to_string(),
            };
        }
        SdkError::DispatchFailure(d) => {
            if let Some(t) = d
                .as_connector_error()
                .and_then(|c| find_transport(c as &(dyn std::error::Error + 'static)))
            {
                return transport(op, key, t);
            }
            return S3Error::Transport {
                op,
                key,
                message: "request could not be sent".into(),
                class: if d.is_user() {
                    Class::Permanent
                } else {
                    Class::Temporary
                },
            };
        }
        SdkError::ConstructionFailure(_) => {
            return S3Error::Transport {
                op,
                key,
                message: "request could not be built".into(),
                class: Class::Permanent,
            };
        }
        SdkError::ResponseError(_) => {
            // The answer broke off (a stall, a reset) or could not be read at all.
            if let Some(t) = std::error::Error::source(&err).and_then(find_transport) {
                return transport(op, key, t);
            }
            return S3Error::protocol(
                op,
                &key,
                format!(
                    "the HTTP {} answer could not be read as S3",
                    status.unwrap_or(0)
                ),
            );
        }
        _ => {}
    }
    if status.is_some_and(|s| (200..300).contains(&s)) {
        // A success status whose body the SDK could not parse: not the XML S3 sends.
        return S3Error::protocol(
            op,
            &key,
            format!(
                "HTTP {} with a body that is not the expected XML",
                status.unwrap_or(0)
            ),
        );
    }
    let code = err.code().unwrap_or_default().to_string();
    // A service error without a message (a bare 5xx, an empty or non-XML body) gets a short
    // one: the SDK's full error context is a multi-line dump of the response.
    let message = match err.message() {
        Some(m) => one_line(m),
        None => "the server gave no S3 error message".into(),
    };
    let class = crate::report::class::of_http(status.unwrap_or(0), &code);
    match (code.as_str(), status) {
        ("NoSuchBucket", _) => S3Error::NoSuchBucket {
            bucket: bucket.to_string(),
        },
        ("NoSuchUpload", _) => S3Error::NoSuchUpload { op, key },
        ("AccessDenied", _) | ("", Some(403)) => S3Error::AccessDenied { op, key },
        ("NotImplemented", _) | (_, Some(501)) => S3Error::NotImplemented { op },
        ("NoSuchKey" | "NotFound", _) | ("", Some(404)) => S3Error::NotFound { op, key },
        _ => S3Error::Service {
            op,
            key,
            code: if code.is_empty() {
                "Error".into()
            } else {
                code
            },
            status: status.unwrap_or(0),
            message,
            class,
        },
    }
}

/// A server's message on one line, at most 300 characters.
fn one_line(m: &str) -> String {
    let mut out: String = m.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > 300 {
        let mut end = 300;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// Counts of S3 requests by kind, for the report and for tests that prove what a run sent.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub list: AtomicU64,
    pub head: AtomicU64,
    pub get: AtomicU64,
    pub put: AtomicU64,
    pub create_multipart: AtomicU64,
    pub upload_part: AtomicU64,
    /// CopyObject and UploadPartCopy: server-side copies, no bytes through us.
    pub copy: AtomicU64,
    pub complete: AtomicU64,
    pub abort: AtomicU64,
    pub list_uploads: AtomicU64,
    pub list_parts: AtomicU64,
    pub delete: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Request attempts after the first (transport errors, throttling, 5xx), made by the SDK.
    pub retries: AtomicU64,
}

/// A point-in-time copy of [`RequestCounts`].
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RequestSnapshot {
    pub list: u64,
    pub head: u64,
    pub get: u64,
    pub put: u64,
    pub create_multipart: u64,
    pub upload_part: u64,
    pub copy: u64,
    pub complete: u64,
    pub abort: u64,
    pub list_uploads: u64,
    pub list_parts: u64,
    pub delete: u64,
    pub total: u64,
    pub bytes_sent: u64,
    pub retries: u64,
}

impl RequestCounts {
    pub fn snapshot(&self) -> RequestSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = RequestSnapshot {
            list: g(&self.list),
            head: g(&self.head),
            get: g(&self.get),
            put: g(&self.put),
            create_multipart: g(&self.create_multipart),
            upload_part: g(&self.upload_part),
            copy: g(&self.copy),
            complete: g(&self.complete),
            abort: g(&self.abort),
            list_uploads: g(&self.list_uploads),
            list_parts: g(&self.list_parts),
            delete: g(&self.delete),
            total: 0,
            bytes_sent: g(&self.bytes_sent),
            retries: g(&self.retries),
        };
        s.total = s.list
            + s.head
            + s.get
            + s.put
            + s.create_multipart
            + s.upload_part
            + s.copy
            + s.complete
            + s.abort
            + s.list_uploads
            + s.list_parts
            + s.delete;
        s
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Counts the SDK's retry attempts, for progress lines and reports, and logs each at INFO
/// with what went wrong: a fault the retry cured is not an error of the run.
#[derive(Debug)]
struct CountRetries(Arc<RequestCounts>);

/// Why the previous attempt of an operation failed, kept for the retry's log line.
#[derive(Debug, Clone)]
struct LastFailure(String);

impl aws_smithy_types::config_bag::Storable for LastFailure {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Intercept for CountRetries {
    fn name(&self) -> &'static str {
        "s3ferry-count-retries"
    }

    fn read_before_attempt(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempts = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        if attempts > 1 {
            bump(&self.0.retries);
            let operation = cfg
                .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
                .map_or("request", |m| m.name());
            let why = cfg
                .load::<LastFailure>()
                .map_or("it failed", |f| f.0.as_str());
            tracing::info!(
                "retrying {operation} {} (attempt {attempts}): {why}",
                context.request().uri()
            );
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Err(e)) = context.output_or_error() {
            let why = match (find_transport(e), context.response()) {
                (Some(t), _) => t.message,
                (None, Some(r)) => format!("HTTP {}", r.status().as_u16()),
                (None, None) => "no answer".into(),
            };
            cfg.interceptor_state().store_put(LastFailure(why));
        }
        Ok(())
    }
}

/// How the client is built, beyond the remote's settings.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub http: http::HttpOptions,
    /// Attempts per request (the SDK retries transport errors, 5xx and throttling with jitter).
    pub max_attempts: u32,
    /// Path style from `--path-style` (overrides the remote).
    pub path_style: Option<bool>,
}

/// Per-upload request options from the remote's settings.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub acl: Option<String>,
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub storage_class: Option<String>,
    /// Hash every payload for SigV4 (`x-amz-content-sha256`). Off by default: the body is
    /// protected by Content-MD5, which is signed, and by our ETag checks, so a second pass
    /// over every byte (SHA-256) buys nothing but CPU; `--s3-sign-payload` turns it on for
    /// servers that insist.
    pub sign_payload: bool,
}

impl PutOptions {
    /// Whether our own settings make ETags non-MD5 (SSE-KMS).
    pub fn etag_not_md5(&self) -> bool {
        self.sse
            .as_deref()
            .is_some_and(|s| s.starts_with("aws:kms"))
    }
}

/// An object listed under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: SystemTime,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct ListPage {
    pub objects: Vec<Listed>,
    /// Common prefixes (delimited listings only).
    pub prefixes: Vec<String>,
    /// Continuation token when there is more.
    pub next: Option<String>,
}

/// Result of a write: the ETag and whether the server says it encrypted with KMS or a customer
/// key (then the ETag is not an MD5).
#[derive(Debug, Clone)]
pub struct Written {
    pub etag: String,
    pub etag_not_md5: bool,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<SystemTime>,
}

/// A part of an in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    /// Empty when the server does not report part ETags.
    pub etag: String,
}

/// What a HEAD returned.
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub content_length: u64,
    pub etag: String,
    pub metadata: HashMap<String, String>,
    pub content_type: Option<String>,
    pub etag_not_md5: bool,
}

/// What an object carries besides its bytes: written with every upload, carried over when an
/// object is copied from another bucket.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    pub mtime: SystemTime,
    pub content_type: Option<String>,
    /// Other user metadata, carried from a source object (never our part size, which is the
    /// new upload's).
    pub user: HashMap<String, String>,
}

impl ObjectMeta {
    /// A local file's: its mtime, nothing else.
    pub fn file(mtime: SystemTime) -> ObjectMeta {
        ObjectMeta {
            mtime,
            content_type: None,
            user: HashMap::new(),
        }
    }

    /// A source object's, as a HEAD or GET reported it: its user metadata and content type,
    /// and its mtime (the one it records, else `mtime`, its LastModified), so a copy restores
    /// to the same file times as the original.
    pub fn of_object(head: &Head, mtime: SystemTime) -> ObjectMeta {
        let user = head
            .metadata
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case(META_MTIME) && !k.eq_ignore_ascii_case(META_PART_SIZE)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ObjectMeta {
            mtime,
            content_type: head.content_type.clone(),
            user,
        }
    }

    /// The `x-amz-meta-*` map to send.
    fn headers(&self, part_size: Option<u64>) -> HashMap<String, String> {
        let mut m = self.user.clone();
        m.insert(META_MTIME.to_string(), format_mtime(self.mtime));
        if let Some(p) = part_size {
            m.insert(META_PART_SIZE.to_string(), p.to_string());
        }
        m
    }
}

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
                    kind: http::TransportKind::Broken,
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

/// Base64 of an MD5, as the Content-MD5 header wants it.
pub fn content_md5(d: &Md5Digest) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

/// The `mtime` metadata value (rclone's format).
pub fn format_mtime(t: SystemTime) -> String {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
        Err(_) => "0.000000000".into(),
    }
}

/// Credentials from the default chain (profiles, web identity, metadata), registered with
/// [`crate::report::redact`] as they are resolved, so no log line can show them.
#[derive(Debug)]
struct Registering(aws_sdk_s3::config::SharedCredentialsProvider);

impl aws_credential_types::provider::ProvideCredentials for Registering {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let c = self.0.provide_credentials().await?;
            crate::report::redact::register_credentials(
                c.access_key_id(),
                c.secret_access_key(),
                c.session_token(),
            );
            Ok(c)
        })
    }
}

/// Build a client for the settings.
///
/// `counts` receives the SDK's retry attempts; pass the same value to [`Store::new`].
pub async fn build_client(
    settings: &S3Settings,
    opts: &ClientOptions,
    counts: Arc<RequestCounts>,
) -> anyhow::Result<Client> {
    let http = http::build(&opts.http)?;
    let mut region = settings.region.clone().filter(|r| !r.is_empty());
    let mut endpoint = settings.endpoint.clone();
    let credentials = match settings
        .credentials
        .clone()
        .unwrap_or(Credentials::DefaultChain)
    {
        Credentials::Static {
            access_key_id,
            secret_access_key,
            session_token,
        } => {
            crate::report::redact::register_credentials(
                &access_key_id,
                secret_access_key.expose(),
                session_token.as_ref().map(|t| t.expose()),
            );
            aws_sdk_s3::config::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    access_key_id,
                    secret_access_key.expose(),
                    session_token.map(|t| t.expose().to_string()),
                    None,
                    "s3ferry",
                ),
            )
        }
        Credentials::DefaultChain => {
            let mut loader =
                aws_config::defaults(BehaviorVersion::latest()).http_client(http.clone());
            if let Some(p) = &settings.profile {
                loader = loader.profile_name(p);
            }
            if region.is_none() && endpoint.is_some() {
                // An explicit endpoint needs no region from instance metadata: take the
                // profile's, if any, and sign us-east-1 otherwise. Nothing is probed.
                let mut profile = aws_config::profile::ProfileFileRegionProvider::builder();
                if let Some(p) = &settings.profile {
                    profile = profile.profile_name(p);
                }
                use aws_config::meta::region::ProvideRegion;
                region = Some(
                    profile
                        .build()
                        .region()
                        .await
                        .map_or_else(|| "us-east-1".to_string(), |r| r.to_string()),
                );
            }
            if let Some(r) = &region {
                loader = loader.region(Region::new(r.clone()));
            }
            let sdk = loader.load().await;
            if region.is_none() {
                region = sdk.region().map(|r| r.to_string());
            }
            if endpoint.is_none() {
                endpoint = sdk.endpoint_url().map(String::from);
            }
            let chain = match &settings.profile {
                // As the AWS CLI: a profile named on the command line wins over keys in the
                // environment, which come first in the default chain.
                Some(p) => aws_sdk_s3::config::SharedCredentialsProvider::new(
                    aws_config::profile::ProfileFileCredentialsProvider::builder()
                        .configure(
                            &aws_config::provider_config::ProviderConfig::without_region()
                                .with_http_client(http.clone()),
                        )
                        .profile_name(p)
                        .build(),
                ),
                None => sdk.credentials_provider().ok_or_else(|| {
                    anyhow::anyhow!("no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")
                })?,
            };
            aws_sdk_s3::config::SharedCredentialsProvider::new(Registering(chain))
        }
    };
    let region = S3Settings {
        region,
        ..Default::default()
    }
    .signing_region();
    let path_style = opts.path_style.unwrap_or_else(|| settings.use_path_style());
    let mut b = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .http_client(http)
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .interceptor(CountRetries(counts))
        .force_path_style(path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(opts.max_attempts.max(1))
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        );
    if let Some(d) = timeout::ceiling(opts.http.idle_timeout, 0) {
        b = b.timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(d)
                .build(),
        );
    }
    if let Some(ep) = endpoint {
        b = b.endpoint_url(ep);
    }
    Ok(Client::from_conf(b.build()))
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

    /// Single-request upload with Content-MD5.
    /// PUT `body` as `rel`; its bytes are counted into `tally` as they are sent (all of them
    /// when this returns Ok, none when it fails).
    pub async fn put_object(
        &self,
        rel: &str,
        body: Bytes,
        md5: &Md5Digest,
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
        let req = object_headers!(req, p, meta, None)
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
        })
    }

    pub async fn create_multipart(
        &self,
        rel: &str,
        meta: &ObjectMeta,
        part_size: u64,
    ) -> Result<String, S3Error> {
        let key = self.key(rel);
        bump(&self.requests.create_multipart);
        let p = &self.put;
        let req = self
            .client
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(&key);
        let out = object_headers!(req, p, meta, Some(part_size))
            .send()
            .await
            .map_err(|e| classify("create multipart upload", self.bucket(), &key, e))?;
        out.upload_id()
            .map(String::from)
            .ok_or_else(|| S3Error::protocol("create multipart upload", &key, "no UploadId"))
    }

    pub async fn upload_part(
        &self,
        rel: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
        md5: &Md5Digest,
        tally: Arc<dyn body::Tally>,
    ) -> Result<String, S3Error> {
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
            .content_md5(content_md5(md5))
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
        Ok(out.e_tag().unwrap_or_default().to_string())
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

    pub async fn complete_multipart(
        &self,
        rel: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<Written, S3Error> {
        let key = self.key(rel);
        bump(&self.requests.complete);
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|(n, etag)| {
                        CompletedPart::builder()
                            .part_number(*n as i32)
                            .e_tag(etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(self.bucket())
            .key(&key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| classify("complete multipart upload", self.bucket(), &key, e))?;
        Ok(Written {
            etag: out.e_tag().unwrap_or_default().to_string(),
            etag_not_md5: kms_or_customer(out.server_side_encryption(), None),
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
        let req = match replace {
            None => req.metadata_directive(MetadataDirective::Copy),
            Some((metadata, content_type)) => req
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(Some(metadata))
                .set_content_type(content_type),
        };
        let out = req
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
        let out = self
            .client
            .upload_part_copy()
            .bucket(self.bucket())
            .key(&key)
            .upload_id(upload_id)
            .part_number(number as i32)
            .copy_source(Self::copy_source(src, src_rel))
            .copy_source_range(format!("bytes={start}-{}", end.max(start + 1) - 1))
            .set_copy_source_if_match(pin(Some(if_match)))
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
            let page = self
                .client
                .list_parts()
                .bucket(self.bucket())
                .key(&key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
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
        let key = self.key(rel);
        bump(&self.requests.head);
        let out = self
            .client
            .head_object()
            .bucket(self.bucket())
            .key(&key)
            .set_part_number(part_number.map(|n| n as i32))
            .send()
            .await
            .map_err(|e| classify("head", self.bucket(), &key, e))?;
        Ok(Head {
            content_length: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().unwrap_or_default().to_string(),
            metadata: out.metadata().cloned().unwrap_or_default(),
            content_type: out.content_type().map(String::from),
            etag_not_md5: kms_or_customer(
                out.server_side_encryption(),
                out.sse_customer_algorithm(),
            ),
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
            .set_if_match(pin(if_match))
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

/// What every page of a listing must hold to: keys under the prefix, after `start_after`, in
/// strictly ascending order (S3 lists in UTF-8 binary order, which is `str`'s order); common
/// prefixes under the prefix. A page that breaks this cannot be merged with the source, and
/// nothing planned from it could be trusted.
pub fn check_page(
    prefix: &str,
    start_after: Option<&str>,
    objects: &[Listed],
    prefixes: &[String],
) -> Result<(), String> {
    if let Some(o) = objects.iter().find(|o| !o.key.starts_with(prefix)) {
        return Err(format!("key {:?} is outside the requested prefix", o.key));
    }
    if let Some(p) = prefixes.iter().find(|p| !p.starts_with(prefix)) {
        return Err(format!(
            "common prefix {p:?} is outside the requested prefix"
        ));
    }
    if let (Some(after), Some(first)) = (start_after, objects.first())
        && first.key.as_str() <= after
    {
        return Err(format!(
            "key {:?} is not after the requested start {after:?}",
            first.key
        ));
    }
    if let Some(w) = objects.windows(2).find(|w| w[0].key >= w[1].key) {
        return Err(format!(
            "keys out of order: {:?} then {:?}",
            w[0].key, w[1].key
        ));
    }
    Ok(())
}

/// A user-metadata value by key; servers differ in the case they return keys in.
fn meta<'a>(meta: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    meta.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Metadata we read back: the recorded part size, if any.
pub fn recorded_part_size(m: &HashMap<String, String>) -> Option<u64> {
    meta(m, META_PART_SIZE).and_then(|v| v.parse().ok())
}

/// Metadata we read back: the recorded mtime string, if any.
pub fn recorded_mtime(m: &HashMap<String, String>) -> Option<&str> {
    meta(m, META_MTIME)
}

/// `1609459200.000000005` (and rclone's shorter fractions) as a time.
pub fn parse_mtime(v: &str) -> Option<SystemTime> {
    let (secs, frac) = v.trim().split_once('.').unwrap_or((v.trim(), ""));
    let secs: u64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtime_format_is_rclones() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_609_459_200, 5);
        assert_eq!(format_mtime(t), "1609459200.000000005");
    }

    #[test]
    fn content_md5_is_base64() {
        assert_eq!(
            content_md5(&crate::read::etag::md5_of(b"")),
            "1B2M2Y8AsgTpgAmY7PhCfg=="
        );
    }

    #[test]
    fn part_size_metadata_roundtrip() {
        let mut m = HashMap::new();
        m.insert("S3ferry-Part-Size".to_string(), "8388608".to_string());
        assert_eq!(recorded_part_size(&m), Some(8 << 20));
        assert_eq!(recorded_part_size(&HashMap::new()), None);
    }
}
