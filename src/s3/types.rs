//! The values S3 calls take and return, and the metadata s3ferry records on objects (mtime in
//! rclone's format, part size), with their parsers.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;

use crate::config::remote::SseCustomer;
use crate::read::checksum::{AUTO_ALGORITHM, Algorithm, ChecksumMode};

use crate::read::etag::Md5Digest;

/// User-metadata key holding the file's mtime, in rclone's format (seconds.nanoseconds).
pub const META_MTIME: &str = "mtime";
/// User-metadata key holding the part size of a multipart upload, so `check` can recompute its ETag.
pub const META_PART_SIZE: &str = "s3ferry-part-size";

/// Per-upload request options from the remote's settings.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub acl: Option<String>,
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    /// SSE-C: the customer key sent with every request that writes or reads an object.
    pub sse_customer: Option<SseCustomer>,
    pub storage_class: Option<String>,
    /// Hash every payload for SigV4 (`x-amz-content-sha256`). Off by default: the body is
    /// protected by Content-MD5, which is signed, and by our ETag checks, so a second pass
    /// over every byte (SHA-256) buys nothing but CPU; `--s3-sign-payload` turns it on for
    /// servers that insist.
    pub sign_payload: bool,
    /// `--s3-checksum`: when uploads carry an S3 checksum beside Content-MD5.
    pub checksum: ChecksumMode,
    /// Set once an answer showed that this server's ETags are not MD5s (`auto` then sends
    /// checksums for the rest of the run). Shared by every clone of these options.
    pub opaque_etags: Arc<AtomicBool>,
}

impl PutOptions {
    /// Whether our own settings make ETags non-MD5 (SSE-KMS, SSE-C).
    pub fn etag_not_md5(&self) -> bool {
        self.sse_customer.is_some()
            || self
                .sse
                .as_deref()
                .is_some_and(|s| s.starts_with("aws:kms"))
    }

    /// The checksum every upload carries now: the one `--s3-checksum` names; with `auto`,
    /// CRC64NVME once the ETags are known not to prove objects (SSE-KMS configured, or an
    /// answer showed it); otherwise none.
    pub fn checksum(&self) -> Option<Algorithm> {
        match self.checksum {
            ChecksumMode::Off => None,
            ChecksumMode::Auto => (self.etag_not_md5()
                || self.opaque_etags.load(Ordering::Relaxed))
            .then_some(AUTO_ALGORITHM),
            m => m.always(),
        }
    }

    /// Note that an answer carried an ETag that is not an MD5 (see [`PutOptions::checksum`]).
    /// Returns whether this changes what `auto` sends from now on.
    pub fn learn_opaque_etags(&self) -> bool {
        self.checksum == ChecksumMode::Auto && !self.opaque_etags.swap(true, Ordering::Relaxed)
    }

    /// Whether registry blobs that go in one PUT carry their SHA-256 (their name) as
    /// `x-amz-checksum-sha256`, for the server to refuse bytes that do not match it: unless
    /// checksums are off or another algorithm is named (a request carries one checksum).
    pub fn blob_digests(&self) -> bool {
        matches!(self.checksum, ChecksumMode::Auto | ChecksumMode::Sha256)
    }
}

/// Checksums an answer carried, by algorithm, as the server wrote them (`base64`, or
/// `base64-N` for a composite).
pub type Answered = Vec<(Algorithm, String)>;

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
    /// The checksums the answer carried (none from servers without checksum support).
    pub checksums: Answered,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<SystemTime>,
    /// The checksum algorithm the upload was created with, as the listing names it.
    pub checksum: Option<String>,
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
    /// The object's stored checksums (asked for with checksum mode; none otherwise).
    pub checksums: Answered,
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
    pub(super) fn headers(&self, part_size: Option<u64>) -> HashMap<String, String> {
        let mut m = self.user.clone();
        m.insert(META_MTIME.to_string(), format_mtime(self.mtime));
        if let Some(p) = part_size {
            m.insert(META_PART_SIZE.to_string(), p.to_string());
        }
        m
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
