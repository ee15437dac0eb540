//! Stage 1 (source side): walk the local tree in parallel and produce its regular files, sorted by
//! key in the same byte order S3 lists in, ready to be merged with the destination listing.
//!
//! The walk only reads metadata. It never opens a file for writing and never follows a symlink
//! unless `--copy-links` asks for it. Problems with one entry (a symlink, a name that is not
//! UTF-8, a key too long for S3) are returned as per-file errors; they never stop the walk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::filter::Filter;

/// S3's limit on key length in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// A regular file in the source tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrcEntry {
    /// Path relative to the source root, `/`-separated; the key is `prefix + rel`.
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
    pub mtime: SystemTime,
}

impl SrcEntry {
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
    #[error("{path}: is a symlink: pass --copy-links to upload what it points to")]
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

/// What the walk found.
#[derive(Debug, Default)]
pub struct Walked {
    pub files: Vec<SrcEntry>,
    pub errors: Vec<WalkError>,
    /// FIFOs, sockets and devices: skipped with a warning each.
    pub special: Vec<String>,
}

/// Walk `root`; keys are `prefix + rel`. Only entries the filter allows are returned.
pub fn walk(
    root: &Path,
    prefix: &str,
    filter: &Filter,
    copy_links: bool,
    threads: usize,
) -> Walked {
    let out = Mutex::new(Walked::default());
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .hidden(false)
        .follow_links(copy_links)
        .threads(threads.max(1))
        .build_parallel();
    walker.run(|| {
        let out = &out;
        Box::new(move |entry| {
            let result = classify(root, prefix, filter, copy_links, entry);
            if let Some(r) = result {
                let mut o = out.lock().expect("walk results lock");
                match r {
                    Found::File(f) => o.files.push(f),
                    Found::Error(e) => o.errors.push(e),
                    Found::Special(p) => o.special.push(p),
                }
            }
            ignore::WalkState::Continue
        })
    });
    let mut walked = out.into_inner().expect("walk results lock");
    walked
        .files
        .sort_unstable_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    walked.errors.sort_by_key(|e| e.to_string());
    walked.special.sort();
    walked
}

enum Found {
    File(SrcEntry),
    Error(WalkError),
    Special(String),
}

fn classify(
    root: &Path,
    prefix: &str,
    filter: &Filter,
    copy_links: bool,
    entry: Result<ignore::DirEntry, ignore::Error>,
) -> Option<Found> {
    let entry = match entry {
        Ok(e) => e,
        Err(err) => {
            return Some(Found::Error(WalkError::Io {
                path: root.display().to_string(),
                message: err.to_string(),
            }));
        }
    };
    if entry.depth() == 0 {
        return None;
    }
    let path = entry.path();
    let rel_path = path.strip_prefix(root).unwrap_or(path);
    let shown = rel_path.to_string_lossy().into_owned();
    let Some(rel) = rel_path.to_str() else {
        return Some(Found::Error(WalkError::NotUtf8 { path: shown }));
    };
    let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
    let ft = entry.file_type()?;
    if ft.is_dir() {
        return None;
    }
    if !filter.allows(&rel) {
        return None;
    }
    if ft.is_symlink() && !copy_links {
        return Some(Found::Error(WalkError::Symlink { path: rel }));
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Some(Found::Error(WalkError::Io {
                path: rel,
                message: e.to_string(),
            }));
        }
    };
    if meta.is_dir() {
        return None;
    }
    if !meta.is_file() {
        return Some(Found::Special(rel));
    }
    let len = prefix.len() + rel.len();
    if len > MAX_KEY_LEN {
        return Some(Found::Error(WalkError::KeyTooLong { path: rel, len }));
    }
    Some(Found::File(SrcEntry {
        path: path.to_path_buf(),
        size: meta.len(),
        mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        rel,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
}
