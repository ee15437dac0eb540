//! ETag arithmetic and multipart part sizing: pure functions, no I/O.
//!
//! S3 reports a single-request upload's ETag as the hex MD5 of its bytes and a multipart upload's as
//! `hex(md5(concat(md5(part_i))))-N`. Both `sync` (to prove what it wrote) and `check` (to prove
//! what is there) rely on these rules, so they live here once and are tested with tables.

use md5::{Digest, Md5};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * GIB;
/// S3's limit on parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// A 16-byte MD5 digest.
pub type Md5Digest = [u8; 16];

/// MD5 of a byte slice.
pub fn md5_of(data: &[u8]) -> Md5Digest {
    Md5::digest(data).into()
}

/// An ETag as S3 returned it, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ETag {
    /// A plain ETag that looks like an MD5 (it is one unless the object is SSE-KMS/SSE-C encrypted).
    Md5(Md5Digest),
    /// A multipart ETag: MD5 of the concatenated part MD5s, and the part count.
    Multipart { digest: Md5Digest, parts: u32 },
    /// Anything else (some gateways, or no ETag at all): cannot prove content.
    Opaque(String),
}

impl ETag {
    /// Parse a raw ETag header or listing value (quotes optional, case-insensitive hex).
    pub fn parse(raw: &str) -> ETag {
        let s = raw.trim().trim_matches('"').to_ascii_lowercase();
        let (hex_part, parts) = match s.split_once('-') {
            Some((h, n)) => match n.parse::<u32>() {
                Ok(n) if n >= 1 => (h, Some(n)),
                _ => return ETag::Opaque(s),
            },
            None => (s.as_str(), None),
        };
        let mut digest = [0u8; 16];
        if hex_part.len() != 32 || hex::decode_to_slice(hex_part, &mut digest).is_err() {
            return ETag::Opaque(s);
        }
        match parts {
            None => ETag::Md5(digest),
            Some(parts) => ETag::Multipart { digest, parts },
        }
    }

    /// The composite ETag S3 computes for a multipart upload with these part digests.
    pub fn composite(part_md5s: &[Md5Digest]) -> ETag {
        let mut h = Md5::new();
        for d in part_md5s {
            h.update(d);
        }
        ETag::Multipart {
            digest: h.finalize().into(),
            parts: part_md5s.len() as u32,
        }
    }
}

impl std::fmt::Display for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ETag::Md5(d) => write!(f, "{}", hex::encode(d)),
            ETag::Multipart { digest, parts } => write!(f, "{}-{parts}", hex::encode(digest)),
            ETag::Opaque(s) => write!(f, "{s}"),
        }
    }
}

/// How a file of `size` bytes is cut into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub size: u64,
    pub part_size: u64,
    pub count: u64,
}

/// Why a file cannot be uploaded in parts.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PartError {
    #[error(
        "file of {size} bytes needs parts over 5 GiB with at most {max_parts} parts: raise max_upload_parts"
    )]
    TooLarge { size: u64, max_parts: u64 },
}

impl PartPlan {
    /// Choose the part size: `chunk_size`, grown in whole MiB until the count fits `max_parts`.
    pub fn new(size: u64, chunk_size: u64, max_parts: u64) -> Result<PartPlan, PartError> {
        let max_parts = max_parts.clamp(1, MAX_PARTS);
        let mut part_size = chunk_size.max(MIN_PART_SIZE);
        if size.div_ceil(part_size) > max_parts {
            part_size = size.div_ceil(max_parts).div_ceil(MIB) * MIB;
        }
        if part_size > MAX_PART_SIZE {
            return Err(PartError::TooLarge { size, max_parts });
        }
        Ok(Self::with_part_size(size, part_size))
    }

    /// The plan for a known part size (as recorded in metadata or inferred by `check`).
    pub fn with_part_size(size: u64, part_size: u64) -> PartPlan {
        let part_size = part_size.max(1);
        PartPlan {
            size,
            part_size,
            count: size.div_ceil(part_size).max(1),
        }
    }

    /// Offset and length of part `index` (0-based).
    pub fn range(&self, index: u64) -> (u64, u64) {
        let offset = index * self.part_size;
        (offset, self.part_size.min(self.size - offset))
    }
}

/// Whether a part size yields exactly `parts` parts for `size` bytes.
pub fn fits(size: u64, part_size: u64, parts: u32) -> bool {
    part_size > 0 && size.div_ceil(part_size).max(1) == parts as u64
}

/// Part sizes worth trying to reproduce a multipart ETag with `parts` parts, best first.
///
/// `hints` (from our metadata or a `HEAD ?partNumber=1`) come first; then the sizes common tools
/// use (rclone 5 MiB, AWS CLI 8 MiB, distribution 10/32 MiB, ...); then other whole-MiB sizes that
/// fit, up to `limit` candidates in all.
pub fn candidate_part_sizes(size: u64, parts: u32, hints: &[u64], limit: usize) -> Vec<u64> {
    const COMMON_MIB: [u64; 12] = [5, 8, 10, 16, 15, 32, 50, 64, 100, 128, 256, 512];
    let mut out: Vec<u64> = Vec::new();
    let push = |p: u64, out: &mut Vec<u64>| {
        if out.len() < limit && fits(size, p, parts) && !out.contains(&p) {
            out.push(p);
        }
    };
    for &h in hints {
        push(h, &mut out);
    }
    if parts == 1 {
        push(size.max(1), &mut out);
        return out;
    }
    for m in COMMON_MIB {
        push(m * MIB, &mut out);
    }
    let lo = size.div_ceil(parts as u64);
    let hi = (size - 1) / (parts as u64 - 1);
    let mut m = lo.div_ceil(MIB).max(1);
    while m * MIB <= hi && out.len() < limit {
        push(m * MIB, &mut out);
        m += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_etags() {
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        assert_eq!(ETag::parse(&format!("\"{md5}\"")).to_string(), md5);
        assert!(matches!(ETag::parse(md5), ETag::Md5(_)));
        assert!(matches!(
            ETag::parse(&format!("\"{}-12\"", md5.to_uppercase())),
            ETag::Multipart { parts: 12, .. }
        ));
        for opaque in [
            "",
            "abc",
            "\"xyz-1\"",
            &format!("{md5}-0"),
            &format!("{md5}-x"),
        ] {
            assert!(matches!(ETag::parse(opaque), ETag::Opaque(_)), "{opaque:?}");
        }
    }

    #[test]
    fn composite_matches_known_value() {
        // Two parts "a" and "b": md5(md5("a") ++ md5("b")) computed independently.
        let parts = [md5_of(b"a"), md5_of(b"b")];
        let mut concat = Vec::new();
        concat.extend_from_slice(&parts[0]);
        concat.extend_from_slice(&parts[1]);
        let want = format!("{}-2", hex::encode(md5_of(&concat)));
        assert_eq!(ETag::composite(&parts).to_string(), want);
        assert_eq!(ETag::parse(&want), ETag::composite(&parts));
        assert_eq!(
            hex::encode(md5_of(b"")),
            "d41d8cd98f00b204e9800998ecf8427e",
            "md5 of empty input"
        );
    }

    #[test]
    fn part_plans() {
        // (size, chunk, max_parts) -> (part_size, count)
        let cases = [
            (10 * MIB, 5 * MIB, 10_000, 5 * MIB, 2),
            (10 * MIB + 1, 5 * MIB, 10_000, 5 * MIB, 3),
            (10 * MIB - 1, 5 * MIB, 10_000, 5 * MIB, 2),
            (1, 5 * MIB, 10_000, 5 * MIB, 1),
            (MIB, MIB, 10_000, 5 * MIB, 1),
            // 100 GiB at 5 MiB would need 20,480 parts: grows to 11 MiB (10,000 * 11 MiB > 100 GiB).
            (100 * GIB, 5 * MIB, 10_000, 11 * MIB, 9_310),
            // Swift's S3 API allows 1,000 parts.
            (10 * GIB, 5 * MIB, 1_000, 11 * MIB, 931),
        ];
        for (size, chunk, max, part, count) in cases {
            let p = PartPlan::new(size, chunk, max).unwrap();
            assert_eq!(
                (p.part_size, p.count),
                (part, count),
                "size={size} chunk={chunk}"
            );
            assert!(p.count <= max);
            let (off, len) = p.range(p.count - 1);
            assert_eq!(off + len, size);
        }
        assert!(PartPlan::new(6 * 1024 * GIB, 5 * MIB, 1000).is_err());
    }

    #[test]
    fn candidates() {
        // 20 MiB in 4 parts: 5 MiB fits, 8 MiB gives 3 parts, 6 MiB gives 4 parts.
        let c = candidate_part_sizes(20 * MIB, 4, &[], 16);
        assert_eq!(c[0], 5 * MIB);
        assert!(c.contains(&(6 * MIB)));
        assert!(!c.contains(&(8 * MIB)));
        assert!(c.iter().all(|&p| fits(20 * MIB, p, 4)));
        // A hint that fits comes first; one that does not is dropped.
        let c = candidate_part_sizes(20 * MIB, 3, &[7 * MIB + 3, 11 * MIB], 16);
        assert_eq!(c[0], 7 * MIB + 3);
        assert!(!c.contains(&(11 * MIB)));
        assert!(c.contains(&(8 * MIB)) && c.contains(&(9 * MIB)));
        assert!(!c.contains(&(10 * MIB)) && !c.contains(&(5 * MIB)));
        // The limit is honoured.
        assert_eq!(candidate_part_sizes(GIB, 2, &[], 4).len(), 4);
        // One part: any size >= file works; the file size itself is tried.
        assert_eq!(candidate_part_sizes(1234, 1, &[], 4), vec![1234]);
    }
}
