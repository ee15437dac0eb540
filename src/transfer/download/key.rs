//! Where an object's bytes may land: a key is not a path. S3 allows keys no filesystem can
//! hold as they are (`a//b`, `../x`, a NUL, a 300-byte name), and a restore that followed such
//! a key could write outside its directory; so every key is mapped to a path under the
//! destination by one checked function, and a key that cannot be is an error naming the key.

use std::path::{Path, PathBuf};

use crate::march::walk::{LEDGER_SUFFIX, PARTIAL_SUFFIX};

/// The longest file name Linux filesystems take (`NAME_MAX`), in bytes.
pub const NAME_MAX: usize = 255;
/// The longest path the kernel takes in one call (`PATH_MAX`, with its NUL), in bytes.
pub const PATH_MAX: usize = 4095;

/// Why a key cannot be restored as a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A folder marker (`photos/`, no bytes): nothing to restore, not an error to count.
    #[error("{key:?}: a folder marker, not a file")]
    FolderMarker { key: String },
    #[error(
        "{key:?}: has an empty path component (a leading '/', '//' or a trailing '/'): rename the object, or exclude it with --exclude"
    )]
    EmptyComponent { key: String },
    #[error(
        "{key:?}: has a '.' or '..' path component, which would leave its directory: rename the object, or exclude it with --exclude"
    )]
    DotComponent { key: String },
    #[error("{key:?}: contains a NUL byte, which no filesystem takes in a name: rename the object")]
    Nul { key: String },
    #[error(
        "{key:?}: the component {component:?} is {len} bytes, more than the {NAME_MAX} a file name may have: rename the object, or exclude it with --exclude"
    )]
    NameTooLong {
        key: String,
        component: String,
        len: usize,
    },
    #[error(
        "{key:?}: the local path would be {len} bytes, more than the {PATH_MAX} Linux takes: restore a longer prefix into a shorter directory, or rename the object"
    )]
    PathTooLong { key: String, len: usize },
    #[error(
        "{key:?}: ends in {PARTIAL_SUFFIX:?}, the name s3ferry gives downloads in progress: rename the object"
    )]
    Reserved { key: String },
}

/// The path under `root` that the object `rel` (its key relative to the source prefix) is
/// restored to, or why it cannot be.
pub fn local_path(root: &Path, rel: &str, size: u64) -> Result<PathBuf, KeyError> {
    let key = || rel.to_string();
    if rel.ends_with('/') && size == 0 && !rel.trim_end_matches('/').contains("//") {
        return Err(KeyError::FolderMarker { key: key() });
    }
    if rel.contains('\0') {
        return Err(KeyError::Nul { key: key() });
    }
    let mut path = root.to_path_buf();
    for component in rel.split('/') {
        match component {
            "" => return Err(KeyError::EmptyComponent { key: key() }),
            "." | ".." => return Err(KeyError::DotComponent { key: key() }),
            c if c.len() > NAME_MAX => {
                return Err(KeyError::NameTooLong {
                    key: key(),
                    component: c.to_string(),
                    len: c.len(),
                });
            }
            c => path.push(c),
        }
    }
    if rel.ends_with(PARTIAL_SUFFIX) || rel.ends_with(LEDGER_SUFFIX) {
        return Err(KeyError::Reserved { key: key() });
    }
    let len = path.as_os_str().len();
    if len > PATH_MAX {
        return Err(KeyError::PathTooLong { key: key(), len });
    }
    Ok(path)
}
