//! A download in progress on disk: the hidden partial file beside its target (written in
//! place, part by part, past the page cache for large files) and its ledger, which records
//! each part once written and proven so that a rerun resumes from there.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{DownloadError, fs, io};
use super::key::NAME_MAX;
use crate::march::walk::{LEDGER_SUFFIX, PARTIAL_SUFFIX};
use crate::read::ReadError;
use crate::read::etag::{Md5Digest, PartPlan};
use crate::transfer::confine::Dir;

/// The name the download of the file `name` is written under until it is proven: a hidden
/// name in the same directory (so the final rename is atomic), `.NAME.s3ferry-partial`; for a
/// name too long to take the prefix and suffix, its MD5 in their place.
pub fn partial_name(name: &str) -> String {
    if 1 + name.len() + PARTIAL_SUFFIX.len() <= NAME_MAX {
        format!(".{name}{PARTIAL_SUFFIX}")
    } else {
        format!(
            ".{}{PARTIAL_SUFFIX}",
            hex::encode(crate::read::etag::md5_of(name.as_bytes()))
        )
    }
}

/// The name of the ledger of the partial file `partial` (a [`partial_name`]): which parts it
/// holds, with their MD5s, for a rerun to resume from.
pub fn ledger_name(partial: &str) -> String {
    let stem = partial.strip_suffix(PARTIAL_SUFFIX).unwrap_or(partial);
    format!("{stem}{LEDGER_SUFFIX}")
}

/// Where a download's files are: the target's directory, held open, and the three names in it.
pub(super) struct Place {
    pub(super) dir: Dir,
    pub(super) name: String,
    pub(super) partial: String,
    pub(super) ledger: String,
    /// The partial file's path, for messages.
    pub(super) shown: PathBuf,
    /// The partial file this download made or took over (device, inode): only that one is
    /// ever removed or renamed into place.
    made: std::sync::OnceLock<(u64, u64)>,
}

impl Place {
    pub(super) fn new(dir: Dir, name: &str) -> Place {
        let partial = partial_name(name);
        Place {
            ledger: ledger_name(&partial),
            shown: dir.shown(&partial),
            name: name.to_string(),
            partial,
            dir,
            made: std::sync::OnceLock::new(),
        }
    }

    /// What the ledger says, if there is one to read.
    pub(super) fn ledger_text(&self, key: &str) -> Option<String> {
        let mut f = self.dir.open(&self.ledger, false, key).ok()??;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut f, &mut text).ok()?;
        Some(text)
    }

    /// Whether the ledger records at least one proven part.
    pub(super) fn ledger_has_parts(&self, key: &str) -> bool {
        self.ledger_text(key).is_some_and(|t| t.lines().count() > 1)
    }

    /// Remove the partial file (if it is still the one this download wrote) and its ledger.
    pub(super) fn clean(&self) {
        if let Some(&made) = self.made.get() {
            let _ = self.dir.remove_same(&self.partial, made);
        }
        let _ = self.dir.remove(&self.ledger);
    }
}

/// The ledger's first line: the object version and part layout its parts belong to.
pub(super) fn ledger_header(etag: &str, size: u64, part: u64) -> String {
    format!("s3ferry-parts 1 {} {size} {part}\n", etag.trim_matches('"'))
}

/// Parts a partial file already holds for this very version and layout: those its ledger
/// records whose bytes, read back, still hash to the recorded MD5 (a part torn by a crash is
/// fetched again). Anything else (no ledger, another version) is nothing.
pub(super) fn resumable(
    place: &Place,
    key: &str,
    header: &str,
    plan: &PartPlan,
    size: u64,
) -> std::collections::HashMap<u64, Md5Digest> {
    let mut out = std::collections::HashMap::new();
    let Some(text) = place.ledger_text(key) else {
        return out;
    };
    let Some(rest) = text.strip_prefix(header) else {
        return out;
    };
    let Ok(Some(file)) = place.dir.open(&place.partial, false, key) else {
        return out;
    };
    if file.metadata().map(|m| m.len()).ok() != Some(size) {
        return out;
    }
    for line in rest.lines() {
        let Some((i, hex)) = line.split_once(' ') else {
            continue;
        };
        let (Ok(i), Ok(want)) = (i.parse::<u64>(), hex::decode(hex)) else {
            continue;
        };
        if i >= plan.count || want.len() != 16 || out.contains_key(&i) {
            continue;
        }
        let (off, len) = plan.range(i);
        let mut buf = vec![0u8; len as usize];
        if file.read_exact_at(&mut buf, off).is_ok() {
            let got = crate::read::etag::md5_of(&buf);
            if got[..] == want[..] {
                out.insert(i, got);
            }
        }
    }
    out
}

/// The file a download is written to: with a second descriptor opened with `O_DIRECT` for
/// large files, so their bytes go from the part buffers to the disk without a copy into the
/// page cache (measured: that copy was 62 % of a restore's CPU samples), where the filesystem
/// allows it. The aligned body of each part goes that way; a part's unaligned tail, and any
/// part in a buffer that is not page-aligned, through the page cache.
pub(super) struct PartialFile {
    pub(super) file: std::fs::File,
    direct: Option<std::fs::File>,
    refused: std::sync::atomic::AtomicBool,
}

impl PartialFile {
    /// Create the file, or with `keep` open it as an earlier attempt left it.
    pub(super) fn create(
        place: &Place,
        key: &str,
        size: u64,
        direct: bool,
        keep: bool,
    ) -> Result<PartialFile, DownloadError> {
        let kept = if keep {
            place.dir.open(&place.partial, true, key)?
        } else {
            None
        };
        let file = match kept {
            Some(f) => f,
            None => place.dir.create(&place.partial, key)?,
        };
        if let Ok(m) = file.metadata() {
            use std::os::unix::fs::MetadataExt;
            let _ = place.made.set((m.dev(), m.ino()));
        }
        file.set_len(size).map_err(|e| fs(&place.shown, e))?;
        let direct = direct
            .then(|| place.dir.open_direct(&place.partial, &file))
            .flatten();
        Ok(PartialFile {
            file,
            direct,
            refused: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Hash what the file holds now, as [`crate::transfer::verify::hash_file`] does.
    pub(super) async fn hash(
        &self,
        shown: &Path,
        md5: bool,
        part_sizes: &[u64],
        sha256: bool,
    ) -> Result<crate::transfer::verify::Hashes, DownloadError> {
        let file = self.file.try_clone().map_err(|e| io(shown, e))?;
        let (p, part_sizes) = (shown.to_path_buf(), part_sizes.to_vec());
        let name = shown.display().to_string();
        crate::read::blocking(&name, move || {
            let f = crate::read::SourceFile::from_file(file, &p)?;
            crate::transfer::verify::hash_open(&f, md5, &part_sizes, sha256)
        })
        .await
        .map_err(|e: ReadError| io(shown, e))
    }

    /// The S3 checksum `alg` of what the file holds now (per part of `part_size` and then
    /// composite, when given), as [`crate::transfer::verify::file_checksum`] computes it.
    pub(super) async fn checksum(
        &self,
        shown: &Path,
        alg: crate::read::checksum::Algorithm,
        part_size: Option<u64>,
    ) -> Result<crate::read::checksum::ObjectChecksum, DownloadError> {
        let file = self.file.try_clone().map_err(|e| io(shown, e))?;
        let p = shown.to_path_buf();
        let name = shown.display().to_string();
        crate::read::blocking(&name, move || {
            let f = crate::read::SourceFile::from_file(file, &p)?;
            crate::transfer::verify::file_checksum(&f, alg, part_size, false).map(|(c, _)| c)
        })
        .await
        .map_err(|e: ReadError| io(shown, e))
    }

    pub(super) fn write_at(&self, data: &[u8], off: u64) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let align = crate::read::DIRECT_ALIGN;
        let body = data.len() / align * align;
        if let Some(d) = &self.direct
            && body > 0
            && off.is_multiple_of(align as u64)
            && (data.as_ptr() as usize).is_multiple_of(align)
            && !self.refused.load(Ordering::Relaxed)
        {
            match d.write_all_at(&data[..body], off) {
                Ok(()) => return self.file.write_all_at(&data[body..], off + body as u64),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(data, off)
    }
}

/// The ledger of a download in progress, shared by the groups that write to it.
pub(super) type Ledger = Arc<std::sync::Mutex<std::fs::File>>;
