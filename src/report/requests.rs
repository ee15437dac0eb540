//! Counts of S3 requests by kind: bumped by the client, read by the progress line, the
//! report and the tests that prove what a run sent.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

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

/// Count one request.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
