//! io_uring readers: dedicated threads, each with its own ring, fed by a bounded channel.
//!
//! Registry data is mostly 71-byte files whose cost is system calls, not bytes: with `pread`
//! each one is open + fstat + read + fstat + close on a blocking thread. Here a small file is
//! one OPENAT, then READ, STATX and CLOSE submitted together (hard-linked, so the close runs
//! whatever the read did), with up to [`IN_FLIGHT`] files in flight per ring, and one
//! `io_uring_enter` covering every submission and completion of a batch. Parts of large files
//! are single READs at an offset on a file the caller holds open.
//!
//! The checks are the `pread` engine's: the file must still be the walked version (size and
//! mtime from the STATX after the read), and must not come up short.
//!
//! Rings are created only after [`probe`] succeeded; where seccomp or the kernel blocks
//! io_uring, the `pread` engine is used instead (see `engine.rs`).

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use io_uring::{IoUring, opcode, squeue, types};
use tokio::sync::oneshot;

use super::{Buffer, ReadError, SourceFile, Stamp};

/// Ring size (submission entries).
const RING_ENTRIES: u32 = 256;
/// Most reads in flight per ring (a small file needs up to 3 entries at once).
const IN_FLIGHT: usize = 64;
/// Reads larger than this go through `pread` (one READ is at most 2 GiB); the engine routes them.
pub const MAX_RING_READ: u64 = 1 << 30;

type Reply = oneshot::Sender<Result<Buffer, ReadError>>;

enum Job {
    Whole {
        path: CString,
        display: String,
        walked: Stamp,
        buf: Buffer,
        reply: Reply,
    },
    Range {
        file: Arc<SourceFile>,
        offset: u64,
        buf: Buffer,
        reply: Reply,
    },
}

/// Check once that io_uring works here with every opcode we use: ring creation, the kernel's
/// opcode probe, and one real round trip. The error says why not (seccomp, sysctl, kernel).
pub fn probe() -> Result<(), String> {
    let explain = |what: &str, e: std::io::Error| {
        let why = match e.raw_os_error() {
            Some(libc::EPERM) => " (blocked: a seccomp profile or kernel.io_uring_disabled)",
            Some(libc::ENOSYS) => " (not implemented by this kernel or sandbox)",
            Some(libc::EINVAL) => " (kernel too old)",
            _ => "",
        };
        format!("{what}: {e}{why}")
    };
    let mut ring = IoUring::new(8).map_err(|e| explain("io_uring_setup", e))?;
    let mut p = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut p)
        .map_err(|e| explain("io_uring_register(PROBE)", e))?;
    for (name, code) in [
        ("OPENAT", opcode::OpenAt::CODE),
        ("READ", opcode::Read::CODE),
        ("STATX", opcode::Statx::CODE),
        ("CLOSE", opcode::Close::CODE),
    ] {
        if !p.is_supported(code) {
            return Err(format!("the kernel's io_uring lacks IORING_OP_{name}"));
        }
    }
    // SAFETY: a NOP references no memory.
    unsafe {
        ring.submission()
            .push(&opcode::Nop::new().build().user_data(7))
            .map_err(|_| "io_uring: submission queue full".to_string())?;
    }
    ring.submit_and_wait(1)
        .map_err(|e| explain("io_uring_enter", e))?;
    match ring.completion().next() {
        Some(c) if c.result() >= 0 => Ok(()),
        Some(c) => Err(explain(
            "io_uring NOP",
            std::io::Error::from_raw_os_error(-c.result()),
        )),
        None => Err("io_uring: no completion for a NOP".into()),
    }
}

/// The reader threads. Dropping this closes the channel; the threads finish what is in
/// flight and exit.
pub struct Readers {
    tx: Sender<Job>,
}

impl Readers {
    /// Start `threads` reader threads, each with its own ring.
    pub fn start(threads: usize) -> std::io::Result<Readers> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(threads.max(1) * IN_FLIGHT * 2);
        for i in 0..threads.max(1) {
            let ring = IoUring::new(RING_ENTRIES)?;
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("s3ferry-uring-{i}"))
                .spawn(move || Worker::new(ring).run(rx))?;
        }
        Ok(Readers { tx })
    }

    async fn submit(
        &self,
        mut job: Job,
        rx: oneshot::Receiver<Result<Buffer, ReadError>>,
    ) -> Result<Buffer, ReadError> {
        // The channel is bounded: wait (without blocking the reactor) while it is full.
        loop {
            match self.tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) => {
                    job = j;
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(ReadError::Io {
                        path: String::new(),
                        message: "io_uring reader threads stopped".into(),
                    });
                }
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(ReadError::Io {
                path: String::new(),
                message: "io_uring reader dropped a request".into(),
            })
        })
    }

    /// Fill `buf` (the walked size, at most [`MAX_RING_READ`]) with a whole file, checking it
    /// is the walked version.
    pub async fn read_whole(
        &self,
        path: &Path,
        walked: Stamp,
        buf: Buffer,
    ) -> Result<Buffer, ReadError> {
        let display = path.display().to_string();
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| ReadError::Io {
            path: display.clone(),
            message: "path contains a NUL byte".into(),
        })?;
        let (reply, rx) = oneshot::channel();
        let job = Job::Whole {
            path,
            display,
            walked,
            buf,
            reply,
        };
        self.submit(job, rx).await
    }

    /// Fill `buf` (at most [`MAX_RING_READ`] bytes) from `offset` of an open file.
    pub async fn read_at(
        &self,
        file: Arc<SourceFile>,
        offset: u64,
        buf: Buffer,
    ) -> Result<Buffer, ReadError> {
        let (reply, rx) = oneshot::channel();
        self.submit(
            Job::Range {
                file,
                offset,
                buf,
                reply,
            },
            rx,
        )
        .await
    }
}

/// One read in flight.
enum Op {
    Whole {
        path: CString,
        display: String,
        walked: Stamp,
        reply: Reply,
        buf: Buffer,
        statx: Box<libc::statx>,
        /// Results of READ, STATX and CLOSE, as they complete.
        read: Option<i32>,
        stat: Option<i32>,
        close: Option<i32>,
    },
    Range {
        file: Arc<SourceFile>,
        offset: u64,
        buf: Buffer,
        done: usize,
        /// The READ in flight bypasses the page cache (see [`SourceFile::direct_fd`]).
        direct: bool,
        /// A READ past the page cache was tried: every later one goes through the cache,
        /// where each either makes progress or ends the read (at most one direct READ per
        /// range, so a file cut short can never send it round again).
        direct_tried: bool,
        /// READs answered with `EINTR` or `EAGAIN`, which are retried up to [`RETRIES`].
        retries: u8,
        reply: Reply,
    },
}

/// A READ interrupted this many times in a row ends the read with the error.
const RETRIES: u8 = 8;

// Stages in the low bits of user_data.
const OPEN: u64 = 0;
const READ: u64 = 1;
const STAT: u64 = 2;
const CLOSE: u64 = 3;

struct Worker {
    ring: IoUring,
    ops: Vec<Option<Op>>,
    free: Vec<usize>,
    live: usize,
}

fn errno(res: i32) -> String {
    std::io::Error::from_raw_os_error(-res).to_string()
}

impl Worker {
    fn new(ring: IoUring) -> Worker {
        Worker {
            ring,
            ops: (0..IN_FLIGHT).map(|_| None).collect(),
            free: (0..IN_FLIGHT).rev().collect(),
            live: 0,
        }
    }

    fn run(mut self, rx: Receiver<Job>) {
        let mut open = true;
        while open || self.live > 0 {
            // Take new work while there is room; block for it only when idle.
            while open && !self.free.is_empty() {
                let job = if self.live == 0 {
                    match rx.recv() {
                        Ok(j) => j,
                        Err(_) => {
                            open = false;
                            break;
                        }
                    }
                } else {
                    match rx.try_recv() {
                        Ok(j) => j,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                };
                self.start(job);
            }
            if self.live == 0 {
                continue;
            }
            if let Err(e) = self.ring.submit_and_wait(1)
                && !matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                )
            {
                self.fail_all(&format!("io_uring_enter: {e}"));
                continue;
            }
            let done: Vec<(u64, i32)> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (data, res) in done {
                self.complete((data >> 2) as usize, data & 3, res);
            }
        }
    }

    fn push(&mut self, e: squeue::Entry) {
        // SAFETY: every buffer and path an entry points to lives in `self.ops` until the
        // entry's completion has been reaped.
        while unsafe { self.ring.submission().push(&e) }.is_err() {
            let _ = self.ring.submit();
        }
    }

    fn start(&mut self, job: Job) {
        let slot = self.free.pop().expect("a free slot");
        self.live += 1;
        match job {
            Job::Whole {
                path,
                display,
                walked,
                buf,
                reply,
            } => {
                let op = Op::Whole {
                    path,
                    display,
                    walked,
                    reply,
                    buf,
                    // SAFETY: statx is plain data; all zeroes is a valid value.
                    statx: Box::new(unsafe { std::mem::zeroed() }),
                    read: None,
                    stat: None,
                    close: None,
                };
                let Op::Whole { path, .. } = self.ops[slot].insert(op) else {
                    unreachable!()
                };
                let e = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
                    .flags(libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY)
                    .build()
                    .user_data(((slot as u64) << 2) | OPEN);
                self.push(e);
            }
            Job::Range {
                file,
                offset,
                buf,
                reply,
            } => {
                self.ops[slot] = Some(Op::Range {
                    file,
                    offset,
                    buf,
                    done: 0,
                    direct: false,
                    direct_tried: false,
                    retries: 0,
                    reply,
                });
                self.push_range(slot);
            }
        }
    }

    fn push_range(&mut self, slot: usize) {
        let Some(Op::Range {
            file,
            offset,
            buf,
            done,
            direct,
            direct_tried,
            ..
        }) = &mut self.ops[slot]
        else {
            unreachable!()
        };
        // The first READ goes past the page cache when it can: one aligned span covering
        // the range. Anything after it (a retry, a short read) goes through the cache.
        let past_cache = match file.direct_fd(*offset) {
            Some(fd) if !std::mem::replace(direct_tried, true) => buf
                .aligned_mut(super::DIRECT_ALIGN)
                .map(|span| (fd, span.as_mut_ptr(), span.len())),
            _ => None,
        };
        *direct = past_cache.is_some();
        let (fd, ptr, len) = past_cache.unwrap_or_else(|| {
            let rest = &mut buf.as_mut_slice()[*done..];
            (file.file.as_raw_fd(), rest.as_mut_ptr(), rest.len())
        });
        let e = opcode::Read::new(types::Fd(fd), ptr, len as u32)
            .offset(*offset + *done as u64)
            .build()
            .user_data(((slot as u64) << 2) | READ);
        self.push(e);
    }

    /// Answer the read in `slot`: its buffer, filled, or the error.
    fn finish(&mut self, slot: usize, result: Result<(), ReadError>) {
        if let Some(op) = self.ops[slot].take() {
            let (reply, buf) = match op {
                Op::Whole { reply, buf, .. } | Op::Range { reply, buf, .. } => (reply, buf),
            };
            let _ = reply.send(result.map(|()| buf));
        }
        self.free.push(slot);
        self.live -= 1;
    }

    fn complete(&mut self, slot: usize, stage: u64, res: i32) {
        match &mut self.ops[slot] {
            Some(Op::Range { .. }) => self.complete_range(slot, res),
            Some(Op::Whole { .. }) if stage == OPEN => self.opened(slot, res),
            Some(Op::Whole {
                read, stat, close, ..
            }) => {
                match stage {
                    READ => *read = Some(res),
                    STAT => *stat = Some(res),
                    CLOSE => *close = Some(res),
                    _ => {}
                }
                if read.is_some() && stat.is_some() && close.is_some() {
                    let r = self.judge_whole(slot);
                    self.finish(slot, r);
                }
            }
            None => {}
        }
    }

    /// The file is open: read it, stat it and close it, in that order, in one submission.
    fn opened(&mut self, slot: usize, res: i32) {
        let Some(Op::Whole {
            display,
            buf,
            statx,
            ..
        }) = &mut self.ops[slot]
        else {
            unreachable!()
        };
        if res < 0 {
            let e = if res == -libc::ENOENT {
                // Walked, then gone: the same failure as a file that changed.
                ReadError::Changed {
                    path: display.clone(),
                }
            } else {
                ReadError::Io {
                    path: display.clone(),
                    message: errno(res),
                }
            };
            return self.finish(slot, Err(e));
        }
        let fd = types::Fd(res);
        let tag = (slot as u64) << 2;
        let read = opcode::Read::new(fd, buf.as_mut_slice().as_mut_ptr(), buf.len() as u32)
            .offset(0)
            .build()
            .flags(squeue::Flags::IO_HARDLINK)
            .user_data(tag | READ);
        let stat = opcode::Statx::new(
            fd,
            c"".as_ptr(),
            (&mut **statx as *mut libc::statx).cast::<types::statx>(),
        )
        .flags(libc::AT_EMPTY_PATH)
        .mask(libc::STATX_SIZE | libc::STATX_MTIME)
        .build()
        .flags(squeue::Flags::IO_HARDLINK)
        .user_data(tag | STAT);
        let close = opcode::Close::new(fd).build().user_data(tag | CLOSE);
        for e in [read, stat, close] {
            self.push(e);
        }
    }

    fn judge_whole(&mut self, slot: usize) -> Result<(), ReadError> {
        let Some(Op::Whole {
            path,
            display,
            walked,
            buf,
            statx,
            read,
            stat,
            ..
        }) = &mut self.ops[slot]
        else {
            unreachable!()
        };
        let (read, stat) = (read.unwrap_or(-libc::EIO), stat.unwrap_or(-libc::EIO));
        if read < 0 {
            return Err(ReadError::Io {
                path: display.clone(),
                message: errno(read),
            });
        }
        if stat < 0 {
            return Err(ReadError::Io {
                path: display.clone(),
                message: format!("statx: {}", errno(stat)),
            });
        }
        let mtime = SystemTime::UNIX_EPOCH
            + Duration::new(
                statx.stx_mtime.tv_sec.max(0) as u64,
                statx.stx_mtime.tv_nsec,
            );
        if statx.stx_size != walked.size || mtime != walked.mtime {
            return Err(ReadError::Changed {
                path: display.clone(),
            });
        }
        if (read as u64) < walked.size {
            // A short read of an unchanged regular file is rare (network file systems):
            // read it again the plain way rather than resubmit a closed descriptor.
            let p = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(path.as_bytes()));
            return super::read_stable(&p, *walked, buf.as_mut_slice());
        }
        Ok(())
    }

    fn complete_range(&mut self, slot: usize, res: i32) {
        let Some(Op::Range {
            file,
            buf,
            done,
            direct,
            retries,
            ..
        }) = &mut self.ops[slot]
        else {
            unreachable!()
        };
        let display = file.path.display().to_string();
        if (res == -libc::EINTR || res == -libc::EAGAIN) && *retries < RETRIES {
            *retries += 1;
            return self.push_range(slot);
        }
        if std::mem::take(direct) {
            if res >= 0 && res as usize >= buf.len() {
                // The aligned span covered the range (it may run past the end of the file).
                return self.finish(slot, Ok(()));
            }
            if res == -libc::EINVAL {
                // This filesystem does not take direct reads after all.
                file.refuse_direct();
                return self.push_range(slot);
            }
            if res >= 0 {
                // Short: read it again through the page cache, which says how short.
                return self.push_range(slot);
            }
        }
        if res < 0 {
            let e = ReadError::Io {
                path: display,
                message: errno(res),
            };
            return self.finish(slot, Err(e));
        }
        if res == 0 {
            let (got, want) = (*done as u64, buf.len() as u64);
            return self.finish(
                slot,
                Err(ReadError::Short {
                    path: display,
                    got,
                    want,
                }),
            );
        }
        *retries = 0;
        *done += res as usize;
        if *done < buf.len() {
            return self.push_range(slot);
        }
        self.finish(slot, Ok(()));
    }

    /// The ring itself failed: fail every read in flight. The kernel may still own their
    /// buffers, so those are leaked rather than freed (with their share of the budget).
    fn fail_all(&mut self, message: &str) {
        for slot in 0..self.ops.len() {
            let Some(op) = self.ops[slot].take() else {
                continue;
            };
            let err = Err(ReadError::Io {
                path: String::new(),
                message: message.to_string(),
            });
            match op {
                Op::Whole {
                    reply,
                    buf,
                    statx,
                    path,
                    ..
                } => {
                    let _ = reply.send(err);
                    std::mem::forget((buf, statx, path));
                }
                Op::Range {
                    reply, buf, file, ..
                } => {
                    let _ = reply.send(err);
                    std::mem::forget((buf, file));
                }
            }
            self.free.push(slot);
            self.live -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(p: &Path) -> Stamp {
        Stamp::of(p).unwrap()
    }

    #[tokio::test]
    async fn reads_whole_files_and_ranges_with_the_same_checks_as_pread() {
        if probe().is_err() {
            eprintln!("io_uring unavailable here: covered by the pread tests");
            return;
        }
        let r = Readers::start(2).unwrap();
        let budget = super::super::Budget::new(64 << 20);
        let whole = |p: &Path, walked: Stamp| {
            let (r, budget, p) = (&r, budget.clone(), p.to_path_buf());
            async move {
                let buf = budget.buffer(walked.size).await;
                r.read_whole(&p, walked, buf)
                    .await
                    .map(|b| b.as_ref().to_vec())
            }
        };
        let d = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for i in 0..300usize {
            let p = d.path().join(format!("f{i}"));
            std::fs::write(&p, vec![i as u8; i * 13]).unwrap();
            paths.push(p);
        }
        // Many in flight at once, more than one ring holds.
        let reads = paths.iter().map(|p| whole(p, stamp(p)));
        for (i, got) in futures::future::join_all(reads)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(got.unwrap(), vec![i as u8; i * 13]);
        }

        // A file that changed since it was walked, and one that is gone.
        let p = &paths[10];
        let walked = stamp(p);
        std::fs::write(p, b"changed!").unwrap();
        assert!(matches!(
            whole(p, walked).await,
            Err(ReadError::Changed { .. })
        ));
        let gone = d.path().join("gone");
        let e = whole(&gone, walked).await.unwrap_err();
        assert!(
            matches!(e, ReadError::Changed { .. }),
            "a file gone since the walk is a change, as with pread: {e}"
        );

        // Ranges of an open file; past the end is a short read.
        let p = &paths[200];
        let f = Arc::new(SourceFile::open(p, stamp(p)).unwrap());
        let got = r.read_at(f.clone(), 100, budget.buffer(1000).await).await;
        assert_eq!(got.unwrap().as_ref(), vec![200u8; 1000]);
        assert!(matches!(
            r.read_at(f, 2000, budget.buffer(1000).await).await,
            Err(ReadError::Short { .. })
        ));
    }

    /// A file cut short after it was opened for ranges (past the page cache where the
    /// filesystem allows it) ends every read of it: with the bytes that are still there, or
    /// a short read. Each read is bounded by a timer here only so that a regression fails
    /// instead of hanging the suite.
    #[tokio::test]
    async fn reads_of_a_file_cut_short_end() {
        if probe().is_err() {
            eprintln!("io_uring unavailable here: covered by the pread tests");
            return;
        }
        let r = Readers::start(1).unwrap();
        let budget = super::super::Budget::new(64 << 20);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        let size = 2 * super::super::DIRECT_FROM;
        std::fs::write(&p, vec![7u8; size as usize]).unwrap();
        let mut f = SourceFile::open(&p, stamp(&p)).unwrap();
        f.add_direct(&p);
        let f = Arc::new(f);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(size / 2 + 100)
            .unwrap();
        let part = super::super::DIRECT_FROM;
        for (offset, want_short) in [(0, false), (part, true), (size - 4096, true)] {
            let read = r.read_at(
                f.clone(),
                offset,
                budget.buffer(part.min(size - offset)).await,
            );
            let got = tokio::time::timeout(Duration::from_secs(20), read)
                .await
                .unwrap_or_else(|_| panic!("the read at {offset} never ended"));
            assert_eq!(
                matches!(got, Err(ReadError::Short { .. })),
                want_short,
                "at {offset}: {:?}",
                got.map(|b| b.len())
            );
        }
    }
}
