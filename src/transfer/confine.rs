//! Writes confined to the destination directory of a restore.
//!
//! A restore often runs as root, into a directory that other people and programs also write
//! to. A symlink planted there (`DIR/blobs -> /etc`, or at the hidden name of a download in
//! progress) must never turn a restore into a write somewhere else. So every file and
//! directory a restore creates, writes, renames, stamps or deletes is reached from the
//! destination directory's descriptor without following any symlink: `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it (Linux 5.6, and not blocked
//! by seccomp), else one component at a time with `O_NOFOLLOW | O_DIRECTORY`; files are
//! created with `O_EXCL | O_NOFOLLOW`, and renamed and removed relative to their directory's
//! descriptor.
//!
//! A symlink in the way is an error naming it, never followed and never replaced: the user
//! decides what it should be (the same choice GNU tar makes the default for directories only
//! with `--keep-directory-symlink`; rclone's local backend skips symlinks it is not told to
//! follow). The destination directory itself is what the user named, and may be a symlink.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why a path under the destination could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "{path}: is a symlink, and a restore never writes through or replaces one: remove it, or leave its keys out with --exclude, then rerun"
    )]
    Symlink { path: String },
    #[error(
        "{path}: is a file where the key {key:?} needs a directory (a bucket can hold both a key and keys under it, a directory cannot): move the file away, or leave one of the keys out with --exclude"
    )]
    NotDir { path: String, key: String },
    #[error(
        "{path}: is a directory where the key {key:?} needs a file (a bucket can hold both a key and keys under it, a directory cannot): move the directory away, or leave one of the keys out with --exclude"
    )]
    IsDir { path: String, key: String },
    #[error(
        "{path}: was replaced while the restore wrote it: nothing was put under its name; remove whatever writes there, then rerun"
    )]
    Replaced { path: String },
    #[error("{path}: {source}{}", hint(source))]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What to do about a write the destination refused, for the errors that have a fix: a full
/// or read-only filesystem, a directory we may not write.
pub fn hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => {
            ": the destination is full: free space there (or restore into a larger volume), then rerun"
        }
        Some(libc::EROFS) => ": the destination is read-only: mount it read-write, then rerun",
        Some(libc::EACCES | libc::EPERM) => {
            ": no permission to write there: fix the ownership, or run as a user who may write it"
        }
        _ => "",
    }
}

fn io(path: &Path, e: impl Into<std::io::Error>) -> Refused {
    Refused::Io {
        path: path.display().to_string(),
        source: e.into(),
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The destination directory, held open for the whole run.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// `openat2` with `RESOLVE_BENEATH` works here (until it is refused once).
    beneath: AtomicBool,
}

impl Root {
    /// Open the directory the user named (created, with its parents, when `create`).
    pub fn open(path: &Path, create: bool) -> Result<Root, Refused> {
        if create {
            std::fs::create_dir_all(path).map_err(|e| io(path, e))?;
        }
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(path, e))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            beneath: AtomicBool::new(true),
        })
    }

    /// The path of `rel` (`/`-separated, relative to the root), for messages.
    pub fn shown(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// The directory `rel` (`/`-separated components, none empty, `.` or `..`; `""` is the
    /// root itself), created with its parents when `create`; `key` names the object that
    /// needs it, in errors.
    pub fn dir(&self, rel: &str, create: bool, key: &str) -> Result<Dir, Refused> {
        let path = self.shown(rel);
        if rel.is_empty() {
            let fd = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())
                .map_err(|e| io(&path, e))?;
            return Ok(Dir { fd, path });
        }
        if self.beneath.load(Ordering::Relaxed) {
            let how =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.fd, rel, DIR_FLAGS, Mode::empty(), how) {
                Ok(fd) => return Ok(Dir { fd, path }),
                // Not in this kernel, or blocked by a seccomp profile: the walk does the same.
                Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::OPNOTSUPP) => {
                    self.beneath.store(false, Ordering::Relaxed);
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
                // Missing (to create), a symlink or a file on the way: the walk says which.
                Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::XDEV) => {}
                Err(e) => return Err(io(&path, e)),
            }
        }
        self.walk(rel, create, key)
    }

    /// [`Root::dir`] one component at a time.
    fn walk(&self, rel: &str, create: bool, key: &str) -> Result<Dir, Refused> {
        let mut fd = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())
            .map_err(|e| io(&self.path, e))?;
        let mut path = self.path.clone();
        for name in rel.split('/') {
            path.push(name);
            let mut tries = 0;
            fd = loop {
                tries += 1;
                match rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty()) {
                    Ok(next) => break next,
                    Err(Errno::NOENT) if create && tries < 3 => {
                        match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o777)) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(e) => return Err(io(&path, e)),
                        }
                    }
                    Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                        return Err(
                            explain(&fd, name, &path, key, false).unwrap_or_else(|| io(&path, e))
                        );
                    }
                    Err(e) => return Err(io(&path, e)),
                }
            };
        }
        Ok(Dir { fd, path })
    }
}

/// What sits at `name` in `dir` when it is not what it should be: a symlink, or a file where
/// a directory must be (`want_file` false), or a directory where a file must be.
fn explain(
    dir: &impl AsFd,
    name: &str,
    path: &Path,
    key: &str,
    want_file: bool,
) -> Option<Refused> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let shown = path.display().to_string();
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Symlink => Some(Refused::Symlink { path: shown }),
        FileType::Directory if want_file => Some(Refused::IsDir {
            path: shown,
            key: key.to_string(),
        }),
        FileType::Directory => None,
        _ if !want_file => Some(Refused::NotDir {
            path: shown,
            key: key.to_string(),
        }),
        _ => None,
    }
}

/// A directory under the root, held open: every name given to it is one component.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// The path of `name` in this directory, for messages.
    pub fn shown(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Create `name` anew for reading and writing. A regular file already there (an earlier
    /// attempt's) is removed first; anything else there is refused.
    pub fn create(&self, name: &str, key: &str) -> Result<File, Refused> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for _ in 0..3 {
            match rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o666)) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(Errno::EXIST) => {
                    if let Some(e) = explain(&self.fd, name, &self.shown(name), key, true) {
                        return Err(e);
                    }
                    match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(io(&self.shown(name), e)),
                    }
                }
                Err(e) => return Err(io(&self.shown(name), e)),
            }
        }
        Err(io(&self.shown(name), Errno::EXIST))
    }

    /// Open the regular file `name` as it is (`None` if there is none), for reading, and
    /// writing when `write`; a symlink there is refused.
    pub fn open(&self, name: &str, write: bool, key: &str) -> Result<Option<File>, Refused> {
        let mode = if write { OFlags::RDWR } else { OFlags::RDONLY };
        match rustix::fs::openat(
            &self.fd,
            name,
            mode | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let f = File::from(fd);
                let regular = f.metadata().map(|m| m.is_file()).unwrap_or(false);
                if !regular {
                    return Err(explain(&self.fd, name, &self.shown(name), key, true)
                        .unwrap_or_else(|| {
                            io(
                                &self.shown(name),
                                std::io::Error::other("not a regular file"),
                            )
                        }));
                }
                Ok(Some(f))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e @ Errno::LOOP) => Err(explain(&self.fd, name, &self.shown(name), key, true)
                .unwrap_or_else(|| io(&self.shown(name), e))),
            Err(e) => Err(io(&self.shown(name), e)),
        }
    }

    /// A second descriptor on the file `like` (opened as `name`) that writes past the page
    /// cache, where the filesystem takes `O_DIRECT` and `name` is still that file.
    pub fn open_direct(&self, name: &str, like: &File) -> Option<File> {
        let flags = OFlags::WRONLY | OFlags::DIRECT | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let f = File::from(rustix::fs::openat(&self.fd, name, flags, Mode::empty()).ok()?);
        let (a, b) = (f.metadata().ok()?, like.metadata().ok()?);
        (a.dev() == b.dev() && a.ino() == b.ino()).then_some(f)
    }

    /// Whether `name` is a regular file (not through a symlink).
    pub fn is_file(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
    }

    /// Rename `from` (still the file `written`) over `to`, both in this directory: `to` may
    /// be a regular file (replaced at once) or absent; a symlink or a directory there is
    /// refused, and so is a `from` that is no longer `written` (something was put in its
    /// place while it was written).
    pub fn replace(&self, from: &str, to: &str, key: &str, written: &File) -> Result<(), Refused> {
        let ours = written.metadata().map_err(|e| io(&self.shown(from), e))?;
        match rustix::fs::statat(&self.fd, from, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_dev == ours.dev() && st.st_ino == ours.ino() => {}
            _ => {
                return Err(Refused::Replaced {
                    path: self.shown(from).display().to_string(),
                });
            }
        }
        if let Some(e) = explain(&self.fd, to, &self.shown(to), key, true) {
            return Err(e);
        }
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(|e| match e {
            Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => {
                explain(&self.fd, to, &self.shown(to), key, true)
                    .unwrap_or_else(|| io(&self.shown(to), e))
            }
            e => io(&self.shown(to), e),
        })
    }

    /// Remove the regular file `name`. Anything else there (a symlink, which is never
    /// followed, a directory) is left as it is, and so is nothing: false then.
    pub fn remove(&self, name: &str) -> Result<bool, Refused> {
        if !self.is_file(name) {
            return Ok(false);
        }
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(io(&self.shown(name), e)),
        }
    }

    /// Remove `name` only if it is still the file `(device, inode)`.
    pub fn remove_same(&self, name: &str, (dev, ino): (u64, u64)) -> Result<bool, Refused> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_dev == dev && st.st_ino == ino => self.remove(name),
            _ => Ok(false),
        }
    }

    /// Make the directory's entries (a rename into it) durable.
    pub fn sync(&self) -> Result<(), Refused> {
        rustix::fs::fsync(&self.fd).map_err(|e| io(&self.path, e))
    }
}

/// `rel` split into its directory (`""` for the root) and its name.
pub fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn roots(d: &Path) -> Vec<Root> {
        let walk = Root::open(d, false).unwrap();
        walk.beneath.store(false, Ordering::Relaxed);
        vec![Root::open(d, false).unwrap(), walk]
    }

    /// Both ways of resolving (openat2, the walk) create what is missing, refuse every
    /// symlink on the way with its name, and say which of two keys to leave out when a file
    /// and a directory want the same name.
    #[test]
    fn directories_are_reached_without_following_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = d.path().join("dst");
        std::fs::create_dir(&root).unwrap();
        symlink(outside.path(), root.join("link")).unwrap();
        std::fs::write(root.join("file"), b"x").unwrap();
        for (i, r) in roots(&root).into_iter().enumerate() {
            let made = format!("made{i}/a/b");
            let dir = r.dir(&made, true, "k").unwrap();
            assert!(root.join(&made).is_dir());
            let f = dir.create("x", "k").unwrap();
            drop(f);
            assert!(root.join(&made).join("x").is_file());
            let e = r.dir("link/deeper", true, "link/deeper/k").unwrap_err();
            assert!(
                matches!(e, Refused::Symlink { ref path } if path.ends_with("dst/link")),
                "{e}"
            );
            assert!(!outside.path().join("deeper").exists());
            let e = r.dir("file/sub", true, "file/sub/k").unwrap_err();
            assert!(matches!(e, Refused::NotDir { .. }), "{e}");
            assert!(e.to_string().contains("--exclude"), "{e}");
            assert!(r.dir("missing", false, "missing/k").is_err());
            assert!(!root.join("missing").exists());
        }
    }

    /// Files are created, opened, renamed and removed in their directory: a symlink at the
    /// hidden name or at the target is refused and left as it was, and its target untouched.
    #[test]
    fn files_never_go_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let root = Root::open(d.path(), false).unwrap();
        let dir = root.dir("", false, "k").unwrap();
        symlink(&victim, d.path().join(".k.partial")).unwrap();
        let e = dir.create(".k.partial", "k").unwrap_err();
        assert!(matches!(e, Refused::Symlink { .. }), "{e}");
        assert!(matches!(
            dir.open(".k.partial", true, "k"),
            Err(Refused::Symlink { .. })
        ));
        assert!(!dir.is_file(".k.partial"));
        assert!(
            dir.open_direct(".k.partial", &File::open(&victim).unwrap())
                .is_none()
        );
        assert!(
            !dir.remove(".k.partial").unwrap(),
            "a symlink is not removed"
        );
        std::fs::remove_file(d.path().join(".k.partial")).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

        // A stale partial file is replaced; the rename replaces a file, not a symlink.
        std::fs::write(d.path().join(".k.partial"), b"stale").unwrap();
        let f = dir.create(".k.partial", "k").unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        symlink(&victim, d.path().join("k")).unwrap();
        let e = dir.replace(".k.partial", "k", "k", &f).unwrap_err();
        assert!(matches!(e, Refused::Symlink { .. }), "{e}");
        assert!(
            std::fs::symlink_metadata(d.path().join("k"))
                .unwrap()
                .is_symlink()
        );
        std::fs::remove_file(d.path().join("k")).unwrap();
        std::fs::create_dir(d.path().join("k")).unwrap();
        let e = dir.replace(".k.partial", "k", "k", &f).unwrap_err();
        assert!(matches!(e, Refused::IsDir { .. }), "{e}");
        std::fs::remove_dir(d.path().join("k")).unwrap();
        // Another file put at the hidden name is never renamed into place.
        std::fs::rename(d.path().join(".k.partial"), d.path().join("mine")).unwrap();
        std::fs::write(d.path().join(".k.partial"), b"planted").unwrap();
        let e = dir.replace(".k.partial", "k", "k", &f).unwrap_err();
        assert!(matches!(e, Refused::Replaced { .. }), "{e}");
        assert!(!d.path().join("k").exists());
        std::fs::rename(d.path().join("mine"), d.path().join(".k.partial")).unwrap();
        dir.replace(".k.partial", "k", "k", &f).unwrap();
        assert!(dir.is_file("k"));
        assert!(dir.open("k", false, "k").unwrap().is_some());
        assert!(dir.open("none", false, "none").unwrap().is_none());
        dir.sync().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }
}
