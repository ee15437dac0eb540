//! S3 errors: one enum for every way a call can fail, and the one function that maps the SDK's
//! errors to it, with their class (and so whether a retry or a rerun could help). No message
//! made here contains credentials or signed URLs.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::report::class::Class;

use super::{http, timeout};

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
pub(super) fn no_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |c| c.source())
        .any(|c| c.is::<aws_credential_types::provider::error::CredentialsError>())
}

pub(super) fn find_transport(
    err: &(dyn std::error::Error + 'static),
) -> Option<http::TransportError> {
    find_transport_as("the server", err)
}

/// [`find_transport`], its message led by `what` (who failed, or what broke).
pub(super) fn find_transport_as(
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

pub(super) fn transport(op: &'static str, key: String, t: http::TransportError) -> S3Error {
    S3Error::Transport {
        op,
        key,
        class: crate::report::class::of_transport(t.kind),
        message: t.message,
    }
}

/// The one place SDK errors become ours.
pub(super) fn classify<E>(op: &'static str, bucket: &str, key: &str, err: SdkError<E>) -> S3Error
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
pub(super) fn one_line(m: &str) -> String {
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
