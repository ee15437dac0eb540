//! Why an object was not restored, and its class.

use std::path::Path;

use crate::s3::S3Error;
use crate::transfer::confine::{self, Refused};

/// Why an object was not restored.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// The destination directory has something in the way (a symlink, a file where a
    /// directory must be): never followed, never replaced.
    #[error(transparent)]
    Local(#[from] Refused),
    #[error(
        "{key:?}: {got} bytes received where {want} were expected: the object changed while it was read; rerun"
    )]
    Short { key: String, got: u64, want: u64 },
    #[error(
        "{key:?}: the bytes received do not match the object's ETag {etag} ({got}): nothing was written under its name; rerun"
    )]
    Integrity {
        key: String,
        etag: String,
        got: String,
    },
}

impl DownloadError {
    pub fn class(&self) -> crate::report::class::Class {
        match self {
            DownloadError::S3(e) => e.class(),
            DownloadError::Short { .. } | DownloadError::Integrity { .. } => {
                crate::report::class::Class::Temporary
            }
            DownloadError::Io { .. } | DownloadError::Local(_) => {
                crate::report::class::Class::Permanent
            }
        }
    }
}

pub(super) fn io(path: &Path, e: impl std::fmt::Display) -> DownloadError {
    DownloadError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A filesystem error writing `path`, with what to do about it where there is a fix.
pub(super) fn fs(path: &Path, e: std::io::Error) -> DownloadError {
    io(path, format!("{e}{}", confine::hint(&e)))
}
