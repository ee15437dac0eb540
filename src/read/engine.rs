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

use super::{ReadError, SourceFile, Stamp};
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

    /// A whole small file and its MD5, checked to be the walked version. Reads too large for
    /// one ring READ use pread whatever the engine.
    pub async fn read_whole(
        &self,
        rel: &str,
        path: &Path,
        walked: Stamp,
    ) -> Result<(Bytes, Md5Digest), ReadError> {
        match self {
            #[cfg(target_os = "linux")]
            IoEngine::Uring(r) if walked.size <= super::uring::MAX_RING_READ => {
                let data = r.read_whole(path, walked).await?;
                md5_off_reactor(rel, data).await
            }
            _ => {
                let p = path.to_path_buf();
                super::blocking(rel, move || super::read_whole(&p, walked)).await
            }
        }
    }

    /// `len` bytes at `offset` of an open file and their MD5.
    pub async fn read_at(
        &self,
        rel: &str,
        file: &Arc<SourceFile>,
        offset: u64,
        len: u64,
    ) -> Result<(Bytes, Md5Digest), ReadError> {
        match self {
            #[cfg(target_os = "linux")]
            IoEngine::Uring(r) if len <= super::uring::MAX_RING_READ => {
                let data = r.read_at(file.clone(), offset, len).await?;
                md5_off_reactor(rel, data).await
            }
            _ => {
                let f = file.clone();
                super::blocking(rel, move || {
                    let data = f.read_at(offset, len)?;
                    let md5 = crate::etag::md5_of(&data);
                    Ok((data, md5))
                })
                .await
            }
        }
    }
}

/// MD5 of bytes read by a ring: inline when tiny, else on a blocking thread, never on the
/// reactor for long.
async fn md5_off_reactor(rel: &str, data: Bytes) -> Result<(Bytes, Md5Digest), ReadError> {
    if data.len() <= HASH_INLINE {
        let md5 = crate::etag::md5_of(&data);
        return Ok((data, md5));
    }
    super::blocking(rel, move || {
        let md5 = crate::etag::md5_of(&data);
        Ok((data, md5))
    })
    .await
}
