//! Which I/O engine reads the source: io_uring reader threads where the kernel and the
//! container's seccomp profile allow it, else positional reads (`pread`) on blocking threads.
//!
//! Docker ≥ 25, containerd ≥ 2 and CRI-O block io_uring in their default seccomp profiles,
//! gVisor does not implement it and `kernel.io_uring_disabled` can switch it off, so `auto`
//! probes once and falls back; the choice and its reason are logged and reported. Both
//! engines apply the same checks (the walked version, no short reads) and return the same bytes.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use sha2::Digest;

use super::{Buffer, ReadError, SourceFile, Stamp};
use crate::etag::Md5Digest;

/// `--io-engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IoEngineMode {
    /// io_uring if it works here, else pread.
    #[default]
    Auto,
    /// io_uring, or fail.
    Uring,
    /// pread on blocking threads.
    Pread,
}

/// Files up to this size are hashed where their bytes arrive; larger ones on a blocking thread.
const HASH_INLINE: usize = 64 << 10;

/// The engine in use.
pub enum IoEngine {
    #[cfg(target_os = "linux")]
    Uring(super::uring::Readers),
    Pread,
}

impl std::fmt::Debug for IoEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl IoEngine {
    /// Pick the engine for `mode`; returns it and why. `threads` is the number of rings.
    pub fn choose(mode: IoEngineMode, threads: usize) -> Result<(Arc<IoEngine>, String), String> {
        if mode == IoEngineMode::Pread {
            return Ok((Arc::new(IoEngine::Pread), "--io-engine pread".into()));
        }
        match Self::uring(threads) {
            Ok(e) => Ok((Arc::new(e), format!("{threads} io_uring reader threads"))),
            Err(why) if mode == IoEngineMode::Auto => Ok((
                Arc::new(IoEngine::Pread),
                format!("io_uring unavailable, using pread: {why}"),
            )),
            Err(why) => Err(format!(
                "--io-engine uring: io_uring is not available here: {why}; use --io-engine auto or pread"
            )),
        }
    }

    #[cfg(target_os = "linux")]
    fn uring(threads: usize) -> Result<IoEngine, String> {
        super::uring::probe()?;
        super::uring::Readers::start(threads)
            .map(IoEngine::Uring)
            .map_err(|e| format!("starting reader threads: {e}"))
    }

    #[cfg(not(target_os = "linux"))]
    fn uring(_threads: usize) -> Result<IoEngine, String> {
        Err("io_uring exists only on Linux".into())
    }

    /// `io_uring` or `pread`.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(target_os = "linux")]
            IoEngine::Uring(_) => "io_uring",
            IoEngine::Pread => "pread",
        }
    }

    /// A whole file read into `buf` (as long as the walked size), checked to be the walked
    /// version, with its MD5 and, when `sha256`, its SHA-256, both computed off the reactor.
    /// Reads too large for one ring READ use pread whatever the engine.
    pub async fn read_whole(
        &self,
        rel: &str,
        path: &Path,
        walked: Stamp,
        mut buf: Buffer,
        sha256: bool,
    ) -> Result<(Bytes, Digests), ReadError> {
        let buf = match self {
            #[cfg(target_os = "linux")]
            IoEngine::Uring(r) if walked.size <= super::uring::MAX_RING_READ => {
                r.read_whole(path, walked, buf).await?
            }
            _ => {
                let p = path.to_path_buf();
                super::blocking(rel, move || {
                    super::read_stable(&p, walked, buf.as_mut_slice()).map(|()| buf)
                })
                .await?
            }
        };
        hash_off_reactor(rel, buf, sha256).await
    }

    /// `buf.len()` bytes at `offset` of an open file, and their MD5.
    pub async fn read_at(
        &self,
        rel: &str,
        file: &Arc<SourceFile>,
        offset: u64,
        mut buf: Buffer,
    ) -> Result<(Bytes, Md5Digest), ReadError> {
        let buf = match self {
            #[cfg(target_os = "linux")]
            IoEngine::Uring(r) if buf.len() as u64 <= super::uring::MAX_RING_READ => {
                r.read_at(file.clone(), offset, buf).await?
            }
            _ => {
                let f = file.clone();
                super::blocking(rel, move || {
                    f.read_into(offset, buf.as_mut_slice()).map(|()| buf)
                })
                .await?
            }
        };
        let (data, d) = hash_off_reactor(rel, buf, false).await?;
        Ok((data, d.md5))
    }
}

/// What was computed over the bytes of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    pub md5: Md5Digest,
    pub sha256: Option<[u8; 32]>,
}

fn digests(data: &[u8], sha256: bool) -> Digests {
    Digests {
        md5: crate::etag::md5_of(data),
        sha256: sha256.then(|| sha2::Sha256::digest(data).into()),
    }
}

/// Hash what was read: inline when tiny, else on a blocking thread, never on the reactor for
/// long.
async fn hash_off_reactor(
    rel: &str,
    buf: Buffer,
    sha256: bool,
) -> Result<(Bytes, Digests), ReadError> {
    if buf.len() <= HASH_INLINE {
        let d = digests(buf.as_ref(), sha256);
        return Ok((buf.freeze(), d));
    }
    if !sha256 {
        // MD5 alone (parts, and files that are not registry blobs): hashed in SIMD lanes
        // together with the other reads waiting.
        let (data, md5) = super::hasher::md5(buf).await;
        return Ok((data, Digests { md5, sha256: None }));
    }
    super::blocking(rel, move || {
        let d = digests(buf.as_ref(), sha256);
        Ok((buf.freeze(), d))
    })
    .await
}
