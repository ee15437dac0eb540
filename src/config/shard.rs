//! `--shard I/N`: split one migration across the N pods of a Kubernetes Indexed Job so that
//! together they cover every key exactly once.
//!
//! The split is a pure function of the relative path: registry blobs go by their two-hex-digit
//! directory (`blobs/sha256/XX/…`), link files named by a digest go with that blob, other
//! repository files by repository name, anything else by a stable hash of its top-level path
//! component. Walk, listing, deletes and `check` all see
//! the same split, so a sharded `sync` only ever deletes inside its own shard.

use sha2::{Digest, Sha256};

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("--shard {0:?}: write it as I/N with 0 <= I < N (or auto/N in an Indexed Job)")]
    Syntax(String),
    #[error(
        "--shard auto/N needs JOB_COMPLETION_INDEX (set by Kubernetes in an Indexed Job): set it or pass I/N"
    )]
    NoIndex,
}

impl Shard {
    /// Parse `I/N` or `auto/N` (index from `JOB_COMPLETION_INDEX`).
    pub fn parse(text: &str, job_index: Option<&str>) -> Result<Shard, ShardError> {
        let err = || ShardError::Syntax(text.to_string());
        let (i, n) = text.split_once('/').ok_or_else(err)?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        let index: u32 = if i.trim() == "auto" {
            job_index
                .ok_or(ShardError::NoIndex)?
                .trim()
                .parse()
                .map_err(|_| err())?
        } else {
            i.trim().parse().map_err(|_| err())?
        };
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard owns the relative path.
    pub fn owns(&self, rel: &str) -> bool {
        shard_of(rel, self.count) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What decides a path's shard.
#[derive(Debug, PartialEq, Eq)]
enum ShardKey<'a> {
    /// The `XX` of `blobs/sha256/XX/…`.
    BlobDir(u8),
    /// Anything else: hashed.
    Hashed(&'a str),
}

fn shard_key(rel: &str) -> ShardKey<'_> {
    if let Some(pos) = rel.find("blobs/sha256/") {
        let rest = &rel[pos + "blobs/sha256/".len()..];
        if rest.len() > 2
            && rest.as_bytes()[2] == b'/'
            && let Ok(b) = u8::from_str_radix(&rest[..2], 16)
        {
            return ShardKey::BlobDir(b);
        }
    }
    // A link named by a digest (`…/sha256/<hex>/link`) goes with the blob it points to, so one
    // shard uploads both and can keep the blob-before-link order.
    if rel.contains("repositories/")
        && let Some(dir) = rel.strip_suffix("/link")
        && let Some((parent, hex)) = dir.rsplit_once('/')
        && parent.ends_with("/sha256")
        && hex.len() == 64
        && let Ok(b) = u8::from_str_radix(&hex[..2], 16)
    {
        return ShardKey::BlobDir(b);
    }
    if let Some(pos) = rel.find("repositories/") {
        // The repository name: components up to the first `_layers`, `_manifests`, `_uploads`.
        let start = pos + "repositories/".len();
        let mut end = start;
        for comp in rel[start..].split('/') {
            if comp.starts_with('_') {
                break;
            }
            end += comp.len() + 1;
        }
        return ShardKey::Hashed(&rel[..end.saturating_sub(1).max(start)]);
    }
    ShardKey::Hashed(rel.split('/').next().unwrap_or(rel))
}

/// The shard (0..n) a relative path belongs to.
pub fn shard_of(rel: &str, n: u32) -> u32 {
    match shard_key(rel) {
        ShardKey::BlobDir(b) => b as u32 % n,
        ShardKey::Hashed(s) => {
            let d = Sha256::digest(s.as_bytes());
            (u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) % n as u64) as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(Shard::parse("1/4", None), Ok(Shard { index: 1, count: 4 }));
        assert_eq!(
            Shard::parse("auto/4", Some("3")),
            Ok(Shard { index: 3, count: 4 })
        );
        assert_eq!(Shard::parse("auto/4", None), Err(ShardError::NoIndex));
        for bad in ["4/4", "1", "a/2", "0/0", "auto/2"] {
            let job = if bad == "auto/2" { Some("2") } else { None };
            assert!(Shard::parse(bad, job).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        let v2 = "docker/registry/v2";
        assert_eq!(
            shard_key(&format!("{v2}/blobs/sha256/ab/abcd/data")),
            ShardKey::BlobDir(0xab)
        );
        let hex = format!("cd{}", "0".repeat(62));
        assert_eq!(
            shard_key(&format!(
                "{v2}/repositories/lib/app/_layers/sha256/{hex}/link"
            )),
            ShardKey::BlobDir(0xcd),
            "a digest-named link goes with its blob"
        );
        assert_eq!(
            shard_key(&format!(
                "{v2}/repositories/library/app/_layers/sha256/ab/link"
            )),
            ShardKey::Hashed("docker/registry/v2/repositories/library/app")
        );
        assert_eq!(
            shard_key(&format!(
                "{v2}/repositories/app/_manifests/tags/x/current/link"
            )),
            ShardKey::Hashed("docker/registry/v2/repositories/app")
        );
        assert_eq!(shard_key("plain/file.txt"), ShardKey::Hashed("plain"));
        assert_eq!(shard_key("top.txt"), ShardKey::Hashed("top.txt"));
        assert_eq!(shard_key("blobs/sha256/zz/x"), ShardKey::Hashed("blobs"));
    }

    #[test]
    fn every_path_has_exactly_one_shard_and_repos_stay_together() {
        let paths: Vec<String> = (0..600)
            .map(|i| match i % 3 {
                0 => format!(
                    "docker/registry/v2/blobs/sha256/{:02x}/{i:064x}/data",
                    i % 256
                ),
                1 => format!(
                    "docker/registry/v2/repositories/p{}/app/_layers/sha256/{i:x}/link",
                    i % 7
                ),
                _ => format!("dir{}/f{i}", i % 11),
            })
            .collect();
        for n in [1, 2, 3, 5] {
            let shards: Vec<Shard> = (0..n).map(|index| Shard { index, count: n }).collect();
            let mut sizes = vec![0; n as usize];
            for p in &paths {
                let owners: Vec<_> = shards.iter().filter(|s| s.owns(p)).collect();
                assert_eq!(owners.len(), 1, "{p} in {n} shards");
                sizes[owners[0].index as usize] += 1;
            }
            if n > 1 {
                assert!(
                    sizes.iter().all(|&s| s > 0),
                    "every shard gets work: {sizes:?}"
                );
            }
        }
        let a = shard_of(
            "docker/registry/v2/repositories/p1/app/_manifests/tags/v1/current/link",
            5,
        );
        let b = shard_of(
            "docker/registry/v2/repositories/p1/app/_manifests/tags/v2/current/link",
            5,
        );
        assert_eq!(a, b, "one repository's tags, one shard");
        let hex = format!("7f{}", "1".repeat(62));
        assert_eq!(
            shard_of(&format!("docker/registry/v2/blobs/sha256/7f/{hex}/data"), 5),
            shard_of(
                &format!("docker/registry/v2/repositories/p1/app/_layers/sha256/{hex}/link"),
                5
            ),
            "a layer link and its blob, one shard"
        );
    }
}
