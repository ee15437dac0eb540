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
use crate::read::checksum::{Algorithm, Checksum};
use crate::read::etag::Md5Digest;
use crate::read::hasher::Hashed;
#[cfg(test)]
use std::os::unix::fs::OpenOptionsExt;

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

/// `--direct-io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DirectIo {
    /// Parts of large files bypass the page cache where the filesystem allows it.
    #[default]
    Auto,
    /// Every read goes through the page cache.
    Off,
}

/// The engine in use, and whether parts of large files bypass the page cache.
pub struct IoEngine {
    engine: Engine,
    direct: DirectIo,
}

enum Engine {
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
    pub fn choose(
        mode: IoEngineMode,
        threads: usize,
        direct: DirectIo,
    ) -> Result<(Arc<IoEngine>, String), String> {
        let made = |engine| Arc::new(IoEngine { engine, direct });
        if mode == IoEngineMode::Pread {
            return Ok((made(Engine::Pread), "--io-engine pread".into()));
        }
        match Self::uring(threads) {
            Ok(e) => Ok((made(e), format!("{threads} io_uring reader threads"))),
            Err(why) if mode == IoEngineMode::Auto => Ok((
                made(Engine::Pread),
                format!("io_uring unavailable, using pread: {why}"),
            )),
            Err(why) => Err(format!(
                "--io-engine uring: io_uring is not available here: {why}; use --io-engine auto or pread"
            )),
        }
    }

    #[cfg(target_os = "linux")]
    fn uring(threads: usize) -> Result<Engine, String> {
        super::uring::probe()?;
        super::uring::Readers::start(threads)
            .map(Engine::Uring)
            .map_err(|e| format!("starting reader threads: {e}"))
    }

    #[cfg(not(target_os = "linux"))]
    fn uring(_threads: usize) -> Result<Engine, String> {
        Err("io_uring exists only on Linux".into())
    }

    /// `io_uring` or `pread`.
    pub fn name(&self) -> &'static str {
        match self.engine {
            #[cfg(target_os = "linux")]
            Engine::Uring(_) => "io_uring",
            Engine::Pread => "pread",
        }
    }

    /// A whole file read into `buf` (as long as the walked size), checked to be the walked
    /// version, with its MD5, its SHA-256 when `sha256`, and the checksum `checksum`, all
    /// computed off the reactor. Reads too large for one ring READ use pread whatever the
    /// engine.
    pub async fn read_whole(
        &self,
        rel: &str,
        path: &Path,
        walked: Stamp,
        mut buf: Buffer,
        sha256: bool,
        checksum: Option<Algorithm>,
    ) -> Result<(Bytes, Digests), ReadError> {
        let buf = match &self.engine {
            #[cfg(target_os = "linux")]
            Engine::Uring(r) if walked.size <= super::uring::MAX_RING_READ => {
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
        hash_off_reactor(rel, buf, sha256, checksum).await
    }

    /// `buf.len()` bytes at `offset` of an open file, and their MD5.
    pub async fn read_at(
        &self,
        rel: &str,
        file: &Arc<SourceFile>,
        offset: u64,
        buf: Buffer,
    ) -> Result<(Bytes, Md5Digest), ReadError> {
        let buf = self.read_range(rel, file, offset, buf).await?;
        let (data, d) = hash_off_reactor(rel, buf, false, None).await?;
        Ok((data, d.md5))
    }

    /// Several ranges of an open file (each buffer filled from its offset), read in parallel
    /// and then hashed as one batch, lane by lane: the MD5 work of a group of parts costs about
    /// what one part alone would. Each range's checksum `checksum` is computed with its MD5.
    pub async fn read_ranges(
        &self,
        rel: &str,
        file: &Arc<SourceFile>,
        ranges: Vec<(u64, Buffer)>,
        checksum: Option<Algorithm>,
    ) -> Result<Vec<Hashed>, ReadError> {
        let reads = ranges
            .into_iter()
            .map(|(offset, buf)| self.read_range(rel, file, offset, buf));
        let bufs = futures::future::try_join_all(reads).await?;
        if bufs.iter().all(|b| b.len() <= HASH_INLINE) {
            return Ok(bufs
                .into_iter()
                .map(|b| {
                    let d = crate::read::etag::md5_of(b.as_ref());
                    let sum = checksum.map(|a| Checksum::of(a, b.as_ref()));
                    (b.freeze(), d, sum)
                })
                .collect());
        }
        Ok(super::hasher::hash_all(bufs, checksum).await)
    }

    async fn read_range(
        &self,
        rel: &str,
        file: &Arc<SourceFile>,
        offset: u64,
        mut buf: Buffer,
    ) -> Result<Buffer, ReadError> {
        Ok(match &self.engine {
            #[cfg(target_os = "linux")]
            Engine::Uring(r) if buf.len() as u64 <= super::uring::MAX_RING_READ => {
                r.read_at(file.clone(), offset, buf).await?
            }
            _ => {
                let f = file.clone();
                super::blocking(rel, move || f.read_buffer(offset, &mut buf).map(|()| buf)).await?
            }
        })
    }

    /// Open a file whose parts will be read with [`IoEngine::read_ranges`]: with `--direct-io
    /// auto`, a second descriptor bypasses the page cache for them.
    pub async fn open_for_ranges(
        &self,
        rel: &str,
        path: &Path,
        walked: Stamp,
    ) -> Result<Arc<SourceFile>, ReadError> {
        let path = path.to_path_buf();
        let direct = self.direct == DirectIo::Auto && walked.size >= super::DIRECT_FROM;
        let f = super::blocking(rel, move || {
            let mut f = SourceFile::open(&path, walked)?;
            if direct {
                f.add_direct(&path);
            }
            Ok(f)
        })
        .await?;
        Ok(Arc::new(f))
    }
}

/// What was computed over the bytes of one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: Md5Digest,
    pub sha256: Option<[u8; 32]>,
    pub checksum: Option<Checksum>,
}

fn digests(data: &[u8], sha256: bool, checksum: Option<Algorithm>) -> Digests {
    let sha256: Option<[u8; 32]> = sha256.then(|| sha2::Sha256::digest(data).into());
    let checksum = checksum.map(|a| match (a, sha256) {
        // The blob's SHA-256, computed once for both.
        (Algorithm::Sha256, Some(d)) => Checksum {
            algorithm: a,
            digest: d.to_vec(),
        },
        _ => Checksum::of(a, data),
    });
    Digests {
        md5: crate::read::etag::md5_of(data),
        sha256,
        checksum,
    }
}

/// Hash what was read: inline when tiny, else on a blocking thread, never on the reactor for
/// long.
async fn hash_off_reactor(
    rel: &str,
    buf: Buffer,
    sha256: bool,
    checksum: Option<Algorithm>,
) -> Result<(Bytes, Digests), ReadError> {
    if buf.len() <= HASH_INLINE {
        let d = digests(buf.as_ref(), sha256, checksum);
        return Ok((buf.freeze(), d));
    }
    if !sha256 && checksum != Some(Algorithm::Sha256) {
        // MD5 (and a CRC) alone (parts, and files that are not registry blobs): hashed in
        // SIMD lanes together with the other reads waiting.
        let (data, md5, checksum) = super::hasher::hash(buf, checksum).await;
        return Ok((
            data,
            Digests {
                md5,
                sha256: None,
                checksum,
            },
        ));
    }
    super::blocking(rel, move || {
        let d = digests(buf.as_ref(), sha256, checksum);
        Ok((buf.freeze(), d))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{Budget, DIRECT_ALIGN};

    fn stamp(p: &Path) -> Stamp {
        Stamp::of(p).unwrap()
    }

    /// Parts read past the page cache, through it after the filesystem refused, and through
    /// buffers too small for a direct read all give the file's bytes and their MD5s, with
    /// either engine; an unaligned tail and an unaligned offset included.
    #[tokio::test]
    async fn ranges_read_past_the_page_cache_or_through_it_give_the_same_bytes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        let size = 3 * crate::read::DIRECT_FROM + 1234;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4093) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let part = crate::read::DIRECT_FROM;
        let budget = Budget::new(64 << 20);
        for mode in [IoEngineMode::Auto, IoEngineMode::Pread] {
            let (engine, _) = IoEngine::choose(mode, 2, DirectIo::Auto).unwrap();
            let f = engine.open_for_ranges("big", &p, stamp(&p)).await.unwrap();
            let direct = f.direct_fd(0).is_some();
            eprintln!("{}: direct reads {direct}", engine.name());
            for refused in [false, true] {
                if refused {
                    f.refuse_direct();
                    assert!(f.direct_fd(0).is_none());
                }
                let mut ranges = Vec::new();
                for i in 0..4 {
                    let (off, len) = (i * part, part.min(size - i * part));
                    ranges.push((off, budget.buffer(len).await));
                }
                // Not aligned: always through the page cache.
                ranges.push((DIRECT_ALIGN as u64 + 1, budget.buffer(2 << 20).await));
                let offsets: Vec<(u64, usize)> =
                    ranges.iter().map(|(o, b)| (*o, b.len())).collect();
                let alg = Some(Algorithm::Crc64nvme);
                let got = engine.read_ranges("big", &f, ranges, alg).await.unwrap();
                for ((off, len), (bytes, md5, sum)) in offsets.into_iter().zip(got) {
                    let want = &data[off as usize..off as usize + len];
                    assert!(bytes.as_ref() == want, "bytes at {off} (refused {refused})");
                    assert_eq!(md5, crate::read::etag::md5_of(want));
                    assert_eq!(sum, Some(Checksum::of(Algorithm::Crc64nvme, want)));
                }
            }
            let off = engine.open_for_ranges("big", &p, stamp(&p));
            drop(off.await.unwrap());
        }
        // --direct-io off never opens the second descriptor; small files never do.
        let (engine, _) = IoEngine::choose(IoEngineMode::Pread, 1, DirectIo::Off).unwrap();
        let f = engine.open_for_ranges("big", &p, stamp(&p)).await.unwrap();
        assert!(f.direct_fd(0).is_none());
        let small = d.path().join("small");
        std::fs::write(&small, b"x").unwrap();
        let (engine, _) = IoEngine::choose(IoEngineMode::Pread, 1, DirectIo::Auto).unwrap();
        let f = engine
            .open_for_ranges("small", &small, stamp(&small))
            .await
            .unwrap();
        assert!(f.direct_fd(0).is_none());
    }

    /// Where the filesystem takes O_DIRECT (ext4 and xfs do; so does tmpfs since Linux 6.6),
    /// the second descriptor is opened; where it does not, the open quietly falls back.
    #[tokio::test]
    async fn direct_reads_are_used_where_the_filesystem_allows_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        std::fs::write(&p, vec![1u8; crate::read::DIRECT_FROM as usize]).unwrap();
        let accepts = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&p)
            .is_ok();
        let (engine, _) = IoEngine::choose(IoEngineMode::Pread, 1, DirectIo::Auto).unwrap();
        let f = engine.open_for_ranges("big", &p, stamp(&p)).await.unwrap();
        assert_eq!(f.direct_fd(0).is_some(), accepts);
        assert!(f.direct_fd(1).is_none(), "an unaligned offset");
    }
}
