//! Stage 1 (source side): walk the local tree and produce its regular files one by one, in the
//! same byte order S3 lists keys in, so they can be merged with the destination listing as
//! they come instead of being held whole.
//!
//! Directories are read in parallel by a few threads, a bounded window ahead of the one being
//! emitted, so memory follows the widest directory (plus that window), not the tree. Key order
//! is not name order: a directory `d` sorts as `d/`, after a sibling file `d.txt` (`.` < `/`).
//!
//! The walk only reads metadata. It never opens a file for writing and never follows a symlink
//! unless `--copy-links` asks for it. Problems with one entry (a symlink, a name that is not
//! UTF-8, a key too long for S3) are reported as per-file errors; they never stop the walk.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::filter::Filter;

/// S3's limit on key length in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// A regular file in the source tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Path relative to the source root, `/`-separated; the key is `prefix + rel`.
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
    pub mtime: SystemTime,
    /// When the file's inode last changed (its bytes, times, owner or name). Unlike the mtime
    /// it cannot be set back: `touch -d`, `cp -p`, `rsync -a` and `tar -x` all renew it.
    pub ctime: SystemTime,
}

impl LocalFile {
    /// The version of the file that was walked, for change detection while reading.
    pub fn stamp(&self) -> crate::read::Stamp {
        crate::read::Stamp {
            size: self.size,
            mtime: self.mtime,
        }
    }
}

/// Why one entry of the walk could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WalkError {
    #[error(
        "{path}: is a symlink, which s3ferry does not follow: pass --copy-links to use what it points to"
    )]
    Symlink { path: String },
    #[error("{path}: name is not valid UTF-8: rename it (S3 keys are UTF-8)")]
    NotUtf8 { path: String },
    #[error(
        "{path}: key is {len} bytes, over S3's 1024-byte limit: shorten the path or the prefix"
    )]
    KeyTooLong { path: String, len: usize },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl WalkError {
    /// The path (relative to the root) the error is about.
    pub fn path(&self) -> &str {
        match self {
            WalkError::Symlink { path }
            | WalkError::NotUtf8 { path }
            | WalkError::KeyTooLong { path, .. }
            | WalkError::Io { path, .. } => path,
        }
    }
}

/// One thing the walk found, in key order.
#[derive(Debug)]
pub enum Item {
    File(LocalFile),
    Error(WalkError),
    /// A FIFO, socket or device: skipped with a warning.
    Special(String),
    /// The walk is complete ([`spawn`] sends it last). A stream that ends without it was cut
    /// short, and what it did not reach must not look absent from the source.
    End,
}

impl Item {
    fn key(&self) -> &str {
        match self {
            Item::File(f) => &f.rel,
            Item::Error(e) => e.path(),
            Item::Special(p) => p,
            Item::End => "",
        }
    }
}

/// What the walk found, collected (for tests).
/// What names a download in progress (`crate::transfer::download`): `.NAME` + this.
pub const PARTIAL_SUFFIX: &str = ".s3ferry-partial";
/// What a download in progress has proven so far sits beside it: `.NAME.s3ferry-parts`.
pub const LEDGER_SUFFIX: &str = ".s3ferry-parts";

/// Whether a local file name is a download in progress, or its ledger (left by an
/// interrupted restore): never a source file to upload, never a file to keep or delete.
pub fn is_partial(name: &str) -> bool {
    name.starts_with('.') && (name.ends_with(PARTIAL_SUFFIX) || name.ends_with(LEDGER_SUFFIX))
}

#[cfg(test)]
#[derive(Debug, Default)]
pub struct Walked {
    pub files: Vec<LocalFile>,
    pub errors: Vec<WalkError>,
    /// FIFOs, sockets and devices: skipped with a warning each.
    pub special: Vec<String>,
}

/// Walk `root` and collect everything; keys are `prefix + rel`.
#[cfg(test)]
pub fn walk(
    root: &Path,
    prefix: &str,
    filter: &Filter,
    copy_links: bool,
    threads: usize,
) -> Walked {
    let mut w = Walked::default();
    walk_each(root, prefix, filter, copy_links, threads, |item| {
        match item {
            Item::File(f) => w.files.push(f),
            Item::Error(e) => w.errors.push(e),
            Item::Special(p) => w.special.push(p),
            Item::End => {}
        }
        true
    });
    w
}

/// Items the walk may get ahead of the merge.
const ITEMS_AHEAD: usize = 4096;

/// Walk `root` on a blocking thread; items come out of the receiver in key order. Dropping
/// the receiver stops the walk.
pub fn spawn(
    root: PathBuf,
    prefix: String,
    filter: Filter,
    copy_links: bool,
    threads: usize,
) -> tokio::sync::mpsc::Receiver<Item> {
    let (tx, rx) = tokio::sync::mpsc::channel(ITEMS_AHEAD);
    tokio::task::spawn_blocking(move || {
        walk_each(&root, &prefix, &filter, copy_links, threads, |item| {
            tx.blocking_send(item).is_ok()
        });
        let _ = tx.blocking_send(Item::End);
    });
    rx
}

/// How many directories are read ahead of the one being emitted, per reader thread.
const AHEAD_PER_THREAD: usize = 16;

/// The settings every directory read shares.
struct Scan<'a> {
    root: &'a Path,
    prefix: &'a str,
    filter: &'a Filter,
    copy_links: bool,
}

/// A directory to read: its path and its key (`rel/`, empty for the root).
struct DirJob {
    path: PathBuf,
    rel: String,
    reply: crossbeam_channel::Sender<DirRead>,
}

/// One directory, read: its entries in key order, and (with `--copy-links`, the only way to
/// loop) its identity.
struct DirRead {
    entries: Vec<Entry>,
    id: Option<(u64, u64)>,
}

enum Entry {
    Item(Item),
    /// A subdirectory, to descend into at this point of the order.
    Dir {
        rel: String,
        path: PathBuf,
    },
}

/// A directory being emitted.
struct Level {
    entries: std::collections::VecDeque<Entry>,
    /// Its subdirectories not yet descended into, in order, with the reads started for them.
    ahead: std::collections::VecDeque<Ahead>,
    id: Option<(u64, u64)>,
}

struct Ahead {
    job: Option<DirJob>,
    reply: crossbeam_channel::Receiver<DirRead>,
}

/// Walk `root` in key order, handing each item to `emit`; stops early when `emit` returns
/// false. Blocks the calling thread; `threads` more read directories.
pub fn walk_each(
    root: &Path,
    prefix: &str,
    filter: &Filter,
    copy_links: bool,
    threads: usize,
    mut emit: impl FnMut(Item) -> bool,
) {
    let scan = Scan {
        root,
        prefix,
        filter,
        copy_links,
    };
    let threads = threads.max(1);
    let window = threads * AHEAD_PER_THREAD;
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<DirJob>(window);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (jobs_rx, scan) = (jobs_rx.clone(), &scan);
            s.spawn(move || {
                for job in jobs_rx {
                    let read = read_dir(scan, &job.path, &job.rel);
                    let _ = job.reply.send(read);
                }
            });
        }
        drop(jobs_rx);
        let first = read_dir(&scan, root, "");
        let mut stack = vec![level(first)];
        start_reads(&mut stack, window, &jobs_tx);
        while let Some(top) = stack.last_mut() {
            let Some(entry) = top.entries.pop_front() else {
                stack.pop();
                continue;
            };
            match entry {
                Entry::Item(item) => {
                    if !emit(item) {
                        break;
                    }
                }
                Entry::Dir { rel, path } => {
                    let mut next = top.ahead.pop_front().expect("a read per directory");
                    if let Some(job) = next.job.take() {
                        // Not started yet (the window was full): read it here.
                        let _ = job.reply.send(read_dir(&scan, &job.path, &job.rel));
                    }
                    let read = next.reply.recv().expect("directory reader");
                    if read.id.is_some() && stack.iter().any(|l| l.id == read.id) {
                        let e = WalkError::Io {
                            path: rel.trim_end_matches('/').to_string(),
                            message: format!("{}: filesystem loop: not followed", path.display()),
                        };
                        if !emit(Item::Error(e)) {
                            break;
                        }
                        continue;
                    }
                    stack.push(level(read));
                    start_reads(&mut stack, window, &jobs_tx);
                }
            }
        }
        drop(jobs_tx);
    });
}

fn level(read: DirRead) -> Level {
    let ahead = read
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Dir { rel, path } => {
                let (tx, rx) = crossbeam_channel::bounded(1);
                Some(Ahead {
                    job: Some(DirJob {
                        path: path.clone(),
                        rel: rel.clone(),
                        reply: tx,
                    }),
                    reply: rx,
                })
            }
            Entry::Item(_) => None,
        })
        .collect();
    Level {
        entries: read.entries.into(),
        ahead,
        id: read.id,
    }
}

/// Start reading the next `window` directories in emit order (deepest level first) that are
/// not being read yet.
fn start_reads(stack: &mut [Level], window: usize, jobs: &crossbeam_channel::Sender<DirJob>) {
    let mut budget = window;
    for level in stack.iter_mut().rev() {
        for a in level.ahead.iter_mut() {
            if budget == 0 {
                return;
            }
            budget -= 1;
            if let Some(job) = a.job.take() {
                match jobs.try_send(job) {
                    Ok(()) => {}
                    Err(crossbeam_channel::TrySendError::Full(job))
                    | Err(crossbeam_channel::TrySendError::Disconnected(job)) => {
                        a.job = Some(job);
                        return;
                    }
                }
            }
        }
    }
}

/// Read one directory: classify every entry, sorted by key.
fn read_dir(scan: &Scan<'_>, dir: &Path, rel: &str) -> DirRead {
    use std::os::unix::fs::MetadataExt;
    let shown = || {
        if rel.is_empty() {
            scan.root.display().to_string()
        } else {
            rel.trim_end_matches('/').to_string()
        }
    };
    // Only followed symlinks can make a loop: without --copy-links, skip the stat.
    let id = if scan.copy_links {
        std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
    } else {
        None
    };
    let iter = match std::fs::read_dir(dir) {
        Ok(it) => it,
        Err(e) => {
            return DirRead {
                entries: vec![Entry::Item(Item::Error(WalkError::Io {
                    path: shown(),
                    message: e.to_string(),
                }))],
                id,
            };
        }
    };
    let mut entries = Vec::new();
    let markers = scan.filter.exclude_if_present();
    for entry in iter {
        match entry {
            Ok(entry) => {
                if let Some(m) = markers.iter().find(|m| entry.file_name() == m.as_str()) {
                    // rclone's --exclude-if-present: the whole directory is left out, as if
                    // it were not there (so a sync deletes what the destination has under it,
                    // as rclone's does).
                    tracing::info!("{}: excluded, as it holds {m}", shown());
                    return DirRead {
                        entries: Vec::new(),
                        id,
                    };
                }
                if let Some(e) = classify(scan, rel, &entry) {
                    entries.push(e);
                }
            }
            Err(e) => entries.push(Entry::Item(Item::Error(WalkError::Io {
                path: shown(),
                message: e.to_string(),
            }))),
        }
    }
    entries.sort_by(|a, b| sort_key(a).cmp(sort_key(b)));
    DirRead { entries, id }
}

fn sort_key(e: &Entry) -> &[u8] {
    match e {
        Entry::Item(i) => i.key().as_bytes(),
        Entry::Dir { rel, .. } => rel.as_bytes(),
    }
}

fn classify(scan: &Scan<'_>, dir_rel: &str, entry: &std::fs::DirEntry) -> Option<Entry> {
    use std::os::unix::fs::MetadataExt;
    let name = entry.file_name();
    let err = |e: WalkError| Some(Entry::Item(Item::Error(e)));
    let Some(name) = name.to_str() else {
        let shown = format!("{dir_rel}{}", name.to_string_lossy());
        return err(WalkError::NotUtf8 { path: shown });
    };
    let rel = format!("{dir_rel}{name}");
    let path = entry.path();
    let io = |rel: String, e: std::io::Error| {
        err(WalkError::Io {
            path: rel,
            message: e.to_string(),
        })
    };
    let ft = match entry.file_type() {
        Ok(ft) => ft,
        Err(e) => return io(rel, e),
    };
    let meta = if ft.is_symlink() {
        if !scan.copy_links {
            if !scan.filter.allows(&rel) {
                return None;
            }
            return err(WalkError::Symlink { path: rel });
        }
        match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => return io(rel, e),
        }
    } else if ft.is_dir() {
        return Some(Entry::Dir {
            rel: rel + "/",
            path,
        });
    } else {
        match entry.metadata() {
            Ok(m) => m,
            Err(e) => return io(rel, e),
        }
    };
    if meta.is_dir() {
        return Some(Entry::Dir {
            rel: rel + "/",
            path,
        });
    }
    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if !scan.filter.allows_file(&rel, meta.len(), mtime) {
        return None;
    }
    if !meta.is_file() {
        return Some(Entry::Item(Item::Special(rel)));
    }
    if is_partial(name) {
        // A download an interrupted restore left: not part of the tree.
        tracing::debug!("{rel}: an unfinished download, left out");
        return None;
    }
    let len = scan.prefix.len() + rel.len();
    if len > MAX_KEY_LEN {
        return err(WalkError::KeyTooLong { path: rel, len });
    }
    let ctime = SystemTime::UNIX_EPOCH
        + std::time::Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
    Some(Entry::Item(Item::File(LocalFile {
        path,
        size: meta.len(),
        mtime,
        ctime,
        rel,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn unfinished_downloads_are_not_part_of_the_tree() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("data"), b"x").unwrap();
        fs::write(d.path().join(".data.s3ferry-partial"), b"half").unwrap();
        fs::write(d.path().join(".hidden"), b"y").unwrap();
        let w = walk(d.path(), "", &Filter::default(), false, 1);
        let rels: Vec<&str> = w.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, [".hidden", "data"]);
    }

    #[test]
    fn walks_sorted_regular_files_only() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("b/c")).unwrap();
        fs::create_dir_all(r.join("empty/dir")).unwrap();
        fs::write(r.join("b/c/z"), b"1").unwrap();
        fs::write(r.join("a b+%#ü"), b"22").unwrap();
        fs::write(r.join("b/a"), b"").unwrap();
        fs::write(r.join("b.txt"), b"x").unwrap();
        std::os::unix::fs::symlink("b/a", r.join("link")).unwrap();
        let w = walk(r, "pre/", &Filter::default(), false, 2);
        let rels: Vec<_> = w.files.iter().map(|f| f.rel.as_str()).collect();
        // Byte order: "b.txt" < "b/a" because '.' (0x2e) < '/' (0x2f).
        assert_eq!(rels, vec!["a b+%#ü", "b.txt", "b/a", "b/c/z"]);
        assert_eq!(w.files[0].size, 2);
        assert_eq!(
            w.errors,
            vec![WalkError::Symlink {
                path: "link".into()
            }]
        );
        let w = walk(r, "", &Filter::default(), true, 1);
        assert!(w.files.iter().any(|f| f.rel == "link" && f.size == 0));
        assert!(w.errors.is_empty());
    }

    #[test]
    fn long_keys_and_filters() {
        let d = tempfile::tempdir().unwrap();
        let name = "n".repeat(200);
        fs::write(d.path().join(&name), b"").unwrap();
        fs::write(d.path().join("skip.tmp"), b"").unwrap();
        let prefix = "p".repeat(900);
        let filter = Filter::new(&["*.tmp".into()], &[]).unwrap();
        let w = walk(d.path(), &prefix, &filter, false, 1);
        assert!(w.files.is_empty());
        assert!(matches!(
            &w.errors[..],
            [WalkError::KeyTooLong { len: 1100, .. }]
        ));
    }

    #[test]
    fn fifo_is_skipped_not_read() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let w = walk(d.path(), "", &Filter::default(), false, 1);
        assert_eq!(w.special, vec!["pipe".to_string()]);
        assert!(w.files.is_empty());
    }

    #[test]
    fn non_utf8_names_are_errors() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
        fs::write(d.path().join(name), b"").unwrap();
        let w = walk(d.path(), "", &Filter::default(), false, 1);
        assert!(
            matches!(&w.errors[..], [WalkError::NotUtf8 { .. }]),
            "{:?}",
            w.errors
        );
    }

    #[test]
    fn streams_in_key_order_however_far_the_reads_run_ahead() {
        // More directories than the read-ahead window (16 per thread), at several depths, with
        // names where directory order and key order differ ("d" sorts as "d/", after "d.x").
        let d = tempfile::tempdir().unwrap();
        let mut want = Vec::new();
        for i in 0..40 {
            for name in ["a", "d.x", "d/e", "d/f/g", "d0", "z"] {
                let rel = format!("{i:02}/{name}");
                let p = d.path().join(&rel);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, b"x").unwrap();
                want.push(rel);
            }
        }
        want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for threads in [1, 3] {
            let w = walk(d.path(), "", &Filter::default(), false, threads);
            let got: Vec<_> = w.files.iter().map(|f| f.rel.clone()).collect();
            assert_eq!(got, want, "threads={threads}");
        }
        // The consumer can stop the walk.
        let mut seen = 0;
        walk_each(d.path(), "", &Filter::default(), false, 2, |_| {
            seen += 1;
            seen < 5
        });
        assert_eq!(seen, 5);
    }

    #[test]
    fn a_symlink_loop_is_reported_not_followed_forever() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/b")).unwrap();
        fs::write(d.path().join("a/b/f"), b"1").unwrap();
        std::os::unix::fs::symlink("..", d.path().join("a/b/up")).unwrap();
        let w = walk(d.path(), "", &Filter::default(), true, 2);
        let rels: Vec<_> = w.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, vec!["a/b/f"]);
        assert!(
            matches!(&w.errors[..], [WalkError::Io { path, message }]
                if path == "a/b/up" && message.contains("filesystem loop")),
            "{:?}",
            w.errors
        );
    }
}
