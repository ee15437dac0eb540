//! Registry mode: what the files of a CNCF distribution (Harbor) filesystem-driver tree mean.
//!
//! Under `docker/registry/v2/` blobs are content-addressed (`blobs/sha256/XX/<hex>/data`, named
//! by the SHA-256 of their bytes) and repositories hold 71-byte link files (`sha256:<hex>`) that
//! point at blobs. Knowing that lets a migration verify every blob for free while reading it,
//! validate every link, upload blobs before the links that need them, and leave the driver's
//! in-progress `_uploads` state behind. Everything here is a pure function of paths and bytes.

use std::collections::HashSet;
use std::path::Path;

/// `--registry auto|on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RegistryMode {
    #[default]
    Auto,
    On,
    Off,
}

/// Where the `v2` directory sits relative to the source root: `""` when the root is `v2`
/// itself, else a prefix ending in `/` (e.g. `docker/registry/v2/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub v2: String,
}

/// Where `v2` may sit under a source root, most specific first.
pub const V2_PREFIXES: [&str; 4] = ["docker/registry/v2/", "registry/v2/", "v2/", ""];

/// Find the registry layout under `root`: the root may be the storage root (holding
/// `docker/registry/v2`), `docker/`, `registry/`, or `v2/` itself.
pub fn detect(root: &Path) -> Option<Layout> {
    for prefix in V2_PREFIXES {
        let dir = root.join(prefix);
        if dir.join("blobs").is_dir() && dir.join("repositories").is_dir() {
            return Some(Layout {
                v2: prefix.to_string(),
            });
        }
    }
    None
}

/// What a path in a registry tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A blob's data file; the hex SHA-256 its path names.
    Blob {
        digest: String,
    },
    /// A link file; the digest its path names, when the path names one.
    Link {
        path_digest: Option<String>,
    },
    /// In-progress upload state of the filesystem driver (`…/_uploads/…`).
    Upload,
    Other,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Layout {
    /// Classify a path relative to the source root.
    pub fn kind(&self, rel: &str) -> Kind {
        let Some(inner) = rel.strip_prefix(&self.v2) else {
            return Kind::Other;
        };
        if let Some(rest) = inner.strip_prefix("blobs/sha256/") {
            let parts: Vec<&str> = rest.split('/').collect();
            if let [xx, hex, "data"] = parts[..]
                && is_hex64(hex)
                && hex.starts_with(xx)
            {
                return Kind::Blob {
                    digest: hex.to_string(),
                };
            }
            return Kind::Other;
        }
        if let Some(rest) = inner.strip_prefix("repositories/") {
            let parts: Vec<&str> = rest.split('/').collect();
            if parts.contains(&"_uploads") {
                return Kind::Upload;
            }
            if parts.last() == Some(&"link") {
                // …/_layers/sha256/<hex>/link, …/_manifests/revisions/sha256/<hex>/link,
                // …/_manifests/tags/<tag>/index/sha256/<hex>/link; tags/<tag>/current/link names none.
                let n = parts.len();
                let path_digest = (n >= 3 && parts[n - 3] == "sha256" && is_hex64(parts[n - 2]))
                    .then(|| parts[n - 2].to_string());
                return Kind::Link { path_digest };
            }
        }
        Kind::Other
    }

    /// The relative path of a blob's data file.
    pub fn blob_path(&self, digest: &str) -> String {
        format!(
            "{}blobs/sha256/{}/{digest}/data",
            self.v2,
            &digest[..2.min(digest.len())]
        )
    }
}

/// Why a link file is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("link does not hold sha256:<64 hex> (got {0:?})")]
    Malformed(String),
    #[error("link holds sha256:{content} but its path names sha256:{path}")]
    Mismatch { content: String, path: String },
}

/// Parse and check a link file's content against the digest its path names.
pub fn parse_link(content: &[u8], path_digest: Option<&str>) -> Result<String, LinkError> {
    let text = String::from_utf8_lossy(content);
    let shown: String = text.chars().take(80).collect();
    let hex = text
        .strip_prefix("sha256:")
        .filter(|h| is_hex64(h))
        .ok_or(LinkError::Malformed(shown))?;
    if let Some(p) = path_digest
        && p != hex
    {
        return Err(LinkError::Mismatch {
            content: hex.to_string(),
            path: p.to_string(),
        });
    }
    Ok(hex.to_string())
}

/// A set of blob digests. A registry of millions of files has hundreds of thousands of blobs,
/// and a sync or check holds every digest it meets until it ends: as 32 bytes each (every digest
/// a registry writes is lowercase hex SHA-256) 114,499 digests take 4.3 MB where as strings they
/// took 10.6 MB, before the allocator's own overhead. Any other digest text is kept as text.
#[derive(Debug, Default)]
pub struct BlobSet {
    sha256: HashSet<[u8; 32]>,
    other: HashSet<Box<str>>,
}

impl BlobSet {
    /// Add a digest (hex, without `sha256:`); whether it was new.
    pub fn insert(&mut self, digest: &str) -> bool {
        match sha256_bytes(digest) {
            Some(b) => self.sha256.insert(b),
            None => self.other.insert(digest.into()),
        }
    }

    pub fn contains(&self, digest: &str) -> bool {
        match sha256_bytes(digest) {
            Some(b) => self.sha256.contains(&b),
            None => self.other.contains(digest),
        }
    }

    pub fn len(&self) -> usize {
        self.sha256.len() + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The 32 bytes of a lowercase hex SHA-256; `None` for any other text (uppercase hex names a
/// different key, so it must not meet its lowercase twin).
fn sha256_bytes(digest: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let lower = digest
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    (lower && hex::decode_to_slice(digest, &mut out).is_ok()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "ab00000000000000000000000000000000000000000000000000000000000001";
    const H2: &str = "cd00000000000000000000000000000000000000000000000000000000000002";

    #[test]
    fn digests_are_kept_compact_and_never_conflated() {
        let mut d = BlobSet::default();
        assert!(d.is_empty());
        assert!(d.insert(H));
        assert!(!d.insert(H), "the same digest twice");
        assert!(d.contains(H) && !d.contains(H2));
        // Uppercase hex is another key in the bucket: a set of its own.
        let upper = H.to_uppercase();
        assert!(!d.contains(&upper));
        assert!(d.insert(&upper) && d.contains(&upper));
        // Text that is no SHA-256 (too short, not hex) is kept as it is.
        for odd in [
            "abc",
            "zz00000000000000000000000000000000000000000000000000000000000001",
        ] {
            assert!(!d.contains(odd));
            assert!(d.insert(odd) && d.contains(odd));
        }
        assert_eq!(d.len(), 4);
        assert_eq!((d.sha256.len(), d.other.len()), (1, 3));
    }

    #[test]
    fn detects_the_layout_at_any_depth() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(detect(d.path()), None);
        let v2 = d.path().join("docker/registry/v2");
        std::fs::create_dir_all(v2.join("blobs")).unwrap();
        std::fs::create_dir_all(v2.join("repositories")).unwrap();
        assert_eq!(
            detect(d.path()),
            Some(Layout {
                v2: "docker/registry/v2/".into()
            })
        );
        assert_eq!(
            detect(&d.path().join("docker")),
            Some(Layout {
                v2: "registry/v2/".into()
            })
        );
        assert_eq!(detect(&v2), Some(Layout { v2: String::new() }));
    }

    #[test]
    fn classifies_paths() {
        let l = Layout {
            v2: "docker/registry/v2/".into(),
        };
        let p = |s: &str| format!("docker/registry/v2/{s}");
        let cases = [
            (
                p(&format!("blobs/sha256/ab/{H}/data")),
                Kind::Blob { digest: H.into() },
            ),
            (p(&format!("blobs/sha256/cd/{H}/data")), Kind::Other),
            (p("blobs/sha256/ab/short/data"), Kind::Other),
            (
                p(&format!("repositories/lib/app/_layers/sha256/{H}/link")),
                Kind::Link {
                    path_digest: Some(H.into()),
                },
            ),
            (
                p(&format!(
                    "repositories/app/_manifests/revisions/sha256/{H2}/link"
                )),
                Kind::Link {
                    path_digest: Some(H2.into()),
                },
            ),
            (
                p(&format!(
                    "repositories/app/_manifests/tags/v1/index/sha256/{H}/link"
                )),
                Kind::Link {
                    path_digest: Some(H.into()),
                },
            ),
            (
                p("repositories/app/_manifests/tags/v1/current/link"),
                Kind::Link { path_digest: None },
            ),
            (p("repositories/app/_uploads/1234/data"), Kind::Upload),
            (p("repositories/app/_uploads/1234/startedat"), Kind::Upload),
            ("elsewhere/file".to_string(), Kind::Other),
        ];
        for (path, want) in cases {
            assert_eq!(l.kind(&path), want, "{path}");
        }
        assert_eq!(l.blob_path(H), p(&format!("blobs/sha256/ab/{H}/data")));
    }

    #[test]
    fn links() {
        let good = format!("sha256:{H}");
        assert_eq!(good.len(), 71);
        assert_eq!(parse_link(good.as_bytes(), Some(H)), Ok(H.to_string()));
        assert_eq!(parse_link(good.as_bytes(), None), Ok(H.to_string()));
        assert!(matches!(
            parse_link(good.as_bytes(), Some(H2)),
            Err(LinkError::Mismatch { .. })
        ));
        for bad in [
            format!("sha256:{H}\n"),
            format!("sha512:{H}"),
            "sha256:xyz".into(),
            String::new(),
        ] {
            assert!(
                matches!(
                    parse_link(bad.as_bytes(), None),
                    Err(LinkError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }
}
