//! Stage 4: read source files, read-only, into buffers that the upload stage sends.
//!
//! Files are opened with `O_RDONLY` and read with positional reads (`pread`), so parts of one
//! file can be read in parallel. A file is stamped (size, mtime) when walked, when opened and
//! after its last read; if any stamp differs the file was being written while we read it, and
//! that is an error for the file: a half-written file is never uploaded as if it were whole.
//! Reading blocks, so callers run these functions on blocking threads, never on the reactor,
//! or use an [`IoEngine`]: io_uring reader threads, or these functions on blocking threads.
//!
//! Parts of large files may also be read through a second descriptor opened with `O_DIRECT`
//! (`--direct-io auto`): a migration reads each byte once, so the page cache only costs a copy
//! per byte (about a third of the CPU of an upload, measured) and evicts what the node had
//! cached. Where the filesystem refuses it (tmpfs, some overlay and network filesystems),
//! at open or at the first read, the file is read through the page cache instead.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

pub mod buffers;
pub mod checksum;
pub mod engine;
pub mod etag;
pub mod hasher;
pub mod sha;
#[cfg(target_os = "linux")]
mod uring;

pub use buffers::{Budget, Buffer};
pub use engine::{Digests, DirectIo, IoEngine, IoEngineMode};

/// Files at least this large have their parts read past the page cache (`--direct-io auto`).
pub const DIRECT_FROM: u64 = 8 << 20;
/// Offsets, lengths and addresses of direct reads are multiples of this: every block size a
/// filesystem asks `O_DIRECT` readers to align to, up to a page.
pub const DIRECT_ALIGN: usize = 4096;

/// Why a source file could not be read as a whole, stable file.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error(
        "{path}: changed while being read (size or mtime moved, or removed): stop writers, then rerun"
    )]
    Changed { path: String },
    #[error(
        "{path}: changed while being read (it ended at byte {got}, where {want} were expected): stop writers, then rerun"
    )]
    Short { path: String, got: u64, want: u64 },
}

impl ReadError {
    /// A file that changed, shrank or vanished while it was read is the same failure whichever
    /// check saw it first: temporary. Anything else the file system says is permanent.
    pub fn class(&self) -> crate::report::class::Class {
        match self {
            ReadError::Changed { .. } | ReadError::Short { .. } => {
                crate::report::class::SOURCE_CHANGED
            }
            ReadError::Io { .. } => crate::report::class::Class::Permanent,
        }
    }
}

/// Size and modification time: what identifies a version of a file for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime: SystemTime,
}

impl Stamp {
    /// The file at `path` as it is now.
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            size: m.len(),
            mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }
}

/// A source file opened read-only.
#[derive(Debug)]
pub struct SourceFile {
    file: File,
    /// The same file opened with `O_DIRECT`, while the filesystem accepts reads through it.
    direct: Option<File>,
    direct_refused: AtomicBool,
    path: PathBuf,
    pub stamp: Stamp,
}

fn io_err(path: &Path, e: std::io::Error) -> ReadError {
    if e.kind() == std::io::ErrorKind::NotFound {
        // Walked, then gone: the tree is changing under us, like a file that changes.
        return ReadError::Changed {
            path: path.display().to_string(),
        };
    }
    ReadError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn stamp_of(file: &File, path: &Path) -> Result<Stamp, ReadError> {
    let m = file.metadata().map_err(|e| io_err(path, e))?;
    Ok(Stamp {
        size: m.len(),
        mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    })
}

impl SourceFile {
    /// Open read-only and check the file is still the version that was walked.
    pub fn open(path: &Path, walked: Stamp) -> Result<SourceFile, ReadError> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let f = SourceFile::from_file(file, path)?;
        if f.stamp != walked {
            return Err(ReadError::Changed {
                path: path.display().to_string(),
            });
        }
        Ok(f)
    }

    /// A file opened elsewhere (a download's partial file, reached without following a
    /// symlink), as it is now; `path` names it in errors.
    pub fn from_file(file: File, path: &Path) -> Result<SourceFile, ReadError> {
        let stamp = stamp_of(&file, path)?;
        Ok(SourceFile {
            file,
            direct: None,
            direct_refused: AtomicBool::new(false),
            path: path.to_path_buf(),
            stamp,
        })
    }

    /// Open a second descriptor that bypasses the page cache, if the filesystem allows it and
    /// it is the same file (not one renamed into its place since).
    pub fn add_direct(&mut self, path: &Path) {
        let Ok(direct) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT | libc::O_NOCTTY)
            .open(path)
        else {
            return;
        };
        let same = |a: &File, b: &File| match (a.metadata(), b.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same(&self.file, &direct) {
            self.direct = Some(direct);
        }
    }

    /// The descriptor for a read at `offset` that bypasses the page cache, if this file has
    /// one that still works and the offset is aligned.
    pub fn direct_fd(&self, offset: u64) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        let d = self.direct.as_ref()?;
        (offset.is_multiple_of(DIRECT_ALIGN as u64) && !self.direct_refused.load(Ordering::Relaxed))
            .then(|| d.as_raw_fd())
    }

    /// A direct read failed with `EINVAL`: this filesystem (or this file) does not take them.
    pub fn refuse_direct(&self) {
        self.direct_refused.store(true, Ordering::Relaxed);
    }

    /// Fill `buf` from `offset`: past the page cache when the file and the buffer allow it
    /// (the one read that fetches an aligned span covering `buf`), else as [`read_into`] does.
    ///
    /// [`read_into`]: SourceFile::read_into
    pub fn read_buffer(&self, offset: u64, buf: &mut Buffer) -> Result<(), ReadError> {
        let want = buf.len();
        if let (Some(direct), Some(span)) = (
            self.direct_fd(offset).and(self.direct.as_ref()),
            buf.aligned_mut(DIRECT_ALIGN),
        ) {
            match direct.read_at(span, offset) {
                Ok(n) if n >= want => return Ok(()),
                // Short (the file shrank): the buffered read below says how.
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.refuse_direct(),
                Err(e) => return Err(io_err(&self.path, e)),
            }
        }
        self.read_into(offset, buf.as_mut_slice())
    }

    /// Fill `buf` from `offset`; the file must hold every byte of it.
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let mut done = 0usize;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    return Err(ReadError::Short {
                        path: self.path.display().to_string(),
                        got: offset + done as u64,
                        want: offset + buf.len() as u64,
                    });
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(&self.path, e)),
            }
        }
        Ok(())
    }

    /// Fail if the file changed since it was opened.
    pub fn check_unchanged(&self) -> Result<(), ReadError> {
        if stamp_of(&self.file, &self.path)? != self.stamp {
            return Err(ReadError::Changed {
                path: self.path.display().to_string(),
            });
        }
        Ok(())
    }

    /// Stream `len` bytes from `offset` through `f` in blocks of at most `block`, reusing one
    /// buffer.
    pub fn for_each_block_in(
        &self,
        offset: u64,
        len: u64,
        block: u64,
        mut f: impl FnMut(&[u8]),
    ) -> Result<(), ReadError> {
        let mut buf = vec![0; block.min(len) as usize];
        let mut pos = offset;
        while pos < offset + len {
            let n = block.min(offset + len - pos) as usize;
            self.read_into(pos, &mut buf[..n])?;
            f(&buf[..n]);
            pos += n as u64;
        }
        Ok(())
    }

    /// Stream the whole file through `f` in blocks, then check it did not change.
    pub fn for_each_block(&self, block: u64, f: impl FnMut(&[u8])) -> Result<(), ReadError> {
        self.for_each_block_in(0, self.stamp.size, block, f)?;
        self.check_unchanged()
    }
}

/// Run blocking file work on a blocking thread; `rel` names the file in errors.
pub async fn blocking<T: Send + 'static>(
    rel: &str,
    f: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ReadError::Io {
            path: rel.to_string(),
            message: e.to_string(),
        })?
}

/// Fill `buf` (as long as the walked size) with a whole file, checking it is the walked
/// version before and after.
pub fn read_stable(path: &Path, walked: Stamp, buf: &mut [u8]) -> Result<(), ReadError> {
    let f = SourceFile::open(path, walked)?;
    f.read_into(0, buf)?;
    f.check_unchanged()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn stamp(path: &Path) -> Stamp {
        Stamp::of(path).unwrap()
    }

    #[test]
    fn reads_ranges_and_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"hello world").unwrap();
        let f = SourceFile::open(&p, stamp(&p)).unwrap();
        let mut buf = [0u8; 5];
        f.read_into(6, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        let mut six = [0u8; 6];
        assert!(matches!(
            f.read_into(6, &mut six),
            Err(ReadError::Short { .. })
        ));
        let mut blocks = Vec::new();
        f.for_each_block(4, |b| blocks.push(b.to_vec())).unwrap();
        assert_eq!(blocks, [&b"hell"[..], b"o wo", b"rld"]);
        let mut all = [0u8; 11];
        read_stable(&p, stamp(&p), &mut all).unwrap();
        assert_eq!(&all, b"hello world");
    }

    #[test]
    fn a_file_changing_is_one_class_whichever_check_sees_it() {
        let changed = ReadError::Changed { path: "f".into() };
        let short = ReadError::Short {
            path: "f".into(),
            got: 1,
            want: 2,
        };
        assert_eq!(changed.class(), short.class());
        assert_eq!(changed.class(), crate::report::class::Class::Temporary);
        // Vanished between the walk and the open: a change too.
        let d = tempfile::tempdir().unwrap();
        let e = SourceFile::open(
            &d.path().join("gone"),
            Stamp {
                size: 1,
                mtime: SystemTime::UNIX_EPOCH,
            },
        )
        .unwrap_err();
        assert!(matches!(e, ReadError::Changed { .. }), "{e}");
    }

    #[test]
    fn detects_changes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"v1").unwrap();
        let walked = stamp(&p);
        let f = SourceFile::open(&p, walked).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"more")
            .unwrap();
        assert!(matches!(
            f.check_unchanged(),
            Err(ReadError::Changed { .. })
        ));
        assert!(matches!(
            read_stable(&p, walked, &mut [0u8; 2]),
            Err(ReadError::Changed { .. })
        ));
    }
}
