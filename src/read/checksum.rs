//! S3's additional checksums (CRC32C, CRC64NVME, SHA-256): computed over the same bytes as
//! the MD5, in the same pass, and sent beside it.
//!
//! Where a bucket's ETags are not MD5s (SSE-KMS, SSE-C, MinIO with KES, S3 Express, several
//! gateways), the ETag proves nothing about the bytes; a checksum sent with the upload is
//! verified by the server and stored with the object, for the plaintext, and a HEAD in
//! checksum mode returns it. This module is the arithmetic: one checksum of a buffer, the
//! object's checksum from its parts' (a full-object CRC combined from the parts' CRCs, or a
//! composite `checksum(concat(part checksums))-N` for SHA-256), and the values as S3 writes
//! them (base64 of the big-endian digest).
//!
//! CRCs come from `crc-fast` (the library AWS's own SDK uses), which dispatches at run time to
//! the CPU's carry-less multiply instructions (PCLMULQDQ/VPCLMULQDQ, ARM PMULL).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crc_fast::CrcAlgorithm;
use sha2::Digest;

/// An S3 checksum algorithm s3ferry computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Algorithm {
    Crc32c,
    Crc64nvme,
    Sha256,
}

impl Algorithm {
    /// The name S3 uses (`ChecksumAlgorithm`, `x-amz-checksum-algorithm`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64nvme => "CRC64NVME",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// Parse S3's name (any case).
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "CRC32C" => Some(Algorithm::Crc32c),
            "CRC64NVME" => Some(Algorithm::Crc64nvme),
            "SHA256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Whether a multipart object's checksum covers the whole object (`FULL_OBJECT`, the CRCs)
    /// rather than its parts' checksums (`COMPOSITE`, SHA-256: S3 has no full-object SHA-256
    /// for multipart uploads).
    pub fn full_object(self) -> bool {
        !matches!(self, Algorithm::Sha256)
    }

    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Algorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64nvme => Some(CrcAlgorithm::Crc64Nvme),
            Algorithm::Sha256 => None,
        }
    }

    /// Bytes in a digest.
    fn width(self) -> usize {
        match self {
            Algorithm::Crc32c => 4,
            Algorithm::Crc64nvme => 8,
            Algorithm::Sha256 => 32,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One checksum of some bytes: the algorithm and its digest, big-endian as S3 sends it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    pub algorithm: Algorithm,
    pub digest: Vec<u8>,
}

impl Checksum {
    /// The checksum of `data`.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Checksum {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    /// The value as S3 writes it in headers and XML: base64 of the digest.
    pub fn base64(&self) -> String {
        STANDARD.encode(&self.digest)
    }

    /// Parse a single (not composite) value S3 returned for `algorithm`.
    pub fn from_base64(algorithm: Algorithm, value: &str) -> Option<Checksum> {
        let digest = STANDARD.decode(value.trim()).ok()?;
        (digest.len() == algorithm.width()).then_some(Checksum { algorithm, digest })
    }

    fn crc_value(&self) -> u64 {
        self.digest
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    }

    fn from_crc(algorithm: Algorithm, value: u64) -> Checksum {
        let w = algorithm.width();
        Checksum {
            algorithm,
            digest: value.to_be_bytes()[8 - w..].to_vec(),
        }
    }
}

/// A checksum computed over bytes fed in order.
pub enum Hasher {
    Crc(Algorithm, crc_fast::Digest),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm.crc() {
            Some(c) => Hasher::Crc(algorithm, crc_fast::Digest::new(c)),
            None => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, d) => d.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Checksum {
        match self {
            Hasher::Crc(a, d) => Checksum::from_crc(a, d.finalize()),
            Hasher::Sha256(h) => Checksum {
                algorithm: Algorithm::Sha256,
                digest: h.finalize().to_vec(),
            },
        }
    }
}

/// What S3 stores for a whole object: one checksum of all its bytes, or (multipart with
/// SHA-256) the checksum of its parts' checksums and the number of parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectChecksum {
    Full(Checksum),
    Composite { of_parts: Checksum, parts: u32 },
}

impl ObjectChecksum {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            ObjectChecksum::Full(c) | ObjectChecksum::Composite { of_parts: c, .. } => c.algorithm,
        }
    }

    /// The value as a HEAD or CompleteMultipartUpload answer writes it (`…=-N` for composite).
    pub fn value(&self) -> String {
        match self {
            ObjectChecksum::Full(c) => c.base64(),
            ObjectChecksum::Composite { of_parts, parts } => {
                format!("{}-{parts}", of_parts.base64())
            }
        }
    }

    /// Parse a value S3 returned for `algorithm`: `base64` or `base64-N`. `None` when it is
    /// not a checksum of that algorithm.
    pub fn parse(algorithm: Algorithm, value: &str) -> Option<ObjectChecksum> {
        let value = value.trim();
        if let Some((b64, n)) = value.rsplit_once('-')
            && let Ok(parts) = n.parse::<u32>()
        {
            let of_parts = Checksum::from_base64(algorithm, b64)?;
            return Some(ObjectChecksum::Composite { of_parts, parts });
        }
        Checksum::from_base64(algorithm, value).map(ObjectChecksum::Full)
    }

    /// The object's checksum from its parts' checksums (in order) and lengths: a CRC is
    /// combined into the CRC of the whole object, a SHA-256 becomes the composite.
    pub fn of_parts(parts: &[(Checksum, u64)]) -> Option<ObjectChecksum> {
        let algorithm = parts.first()?.0.algorithm;
        if parts.iter().any(|(c, _)| c.algorithm != algorithm) {
            return None;
        }
        match algorithm.crc() {
            Some(crc) => {
                let mut acc = parts[0].0.crc_value();
                for (c, len) in &parts[1..] {
                    acc = crc_fast::checksum_combine(crc, acc, c.crc_value(), *len);
                }
                Some(ObjectChecksum::Full(Checksum::from_crc(algorithm, acc)))
            }
            None => {
                let mut h = Hasher::new(algorithm);
                for (c, _) in parts {
                    h.update(&c.digest);
                }
                Some(ObjectChecksum::Composite {
                    of_parts: h.finish(),
                    parts: parts.len() as u32,
                })
            }
        }
    }
}

impl std::fmt::Display for ObjectChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.algorithm(), self.value())
    }
}

/// `--s3-checksum`: when uploads carry a checksum beside Content-MD5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ChecksumMode {
    /// Only where the ETag cannot prove the object: SSE-KMS or SSE-C configured, or a server
    /// found to answer with ETags that are not MD5s; then CRC64NVME. Registry blobs that go
    /// in one PUT carry their SHA-256 (their name) either way.
    #[default]
    Auto,
    /// Never: Content-MD5 alone, and no registry digests.
    Off,
    /// CRC32C on every upload.
    Crc32c,
    /// CRC64NVME on every upload.
    Crc64nvme,
    /// SHA-256 on every upload.
    Sha256,
}

impl ChecksumMode {
    /// The algorithm every upload carries, for the modes that name one.
    pub fn always(self) -> Option<Algorithm> {
        match self {
            ChecksumMode::Crc32c => Some(Algorithm::Crc32c),
            ChecksumMode::Crc64nvme => Some(Algorithm::Crc64nvme),
            ChecksumMode::Sha256 => Some(Algorithm::Sha256),
            ChecksumMode::Auto | ChecksumMode::Off => None,
        }
    }

    /// Parse a config or environment value (`auto`, `off`, or an algorithm, any case).
    pub fn parse(s: &str) -> Option<ChecksumMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(ChecksumMode::Auto),
            "off" | "none" | "false" => Some(ChecksumMode::Off),
            "crc32c" => Some(ChecksumMode::Crc32c),
            "crc64nvme" => Some(ChecksumMode::Crc64nvme),
            "sha256" => Some(ChecksumMode::Sha256),
            _ => None,
        }
    }
}

/// The algorithm used when `auto` finds that ETags cannot prove: full-object for multipart,
/// and the fastest of the three.
pub const AUTO_ALGORITHM: Algorithm = Algorithm::Crc64nvme;

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard check values (the CRC catalogue's, for "123456789") and S3's encoding.
    #[test]
    fn check_values() {
        let c = Checksum::of(Algorithm::Crc32c, b"123456789");
        assert_eq!(hex::encode(&c.digest), "e3069283");
        let c = Checksum::of(Algorithm::Crc64nvme, b"123456789");
        assert_eq!(hex::encode(&c.digest), "ae8b14860a799888");
        let c = Checksum::of(Algorithm::Sha256, b"");
        assert_eq!(
            c.base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "SHA-256 of nothing, base64"
        );
        assert_eq!(
            Checksum::from_base64(
                Algorithm::Crc32c,
                &Checksum::of(Algorithm::Crc32c, b"x").base64()
            ),
            Some(Checksum::of(Algorithm::Crc32c, b"x"))
        );
        assert_eq!(
            Checksum::from_base64(Algorithm::Crc32c, "AAAAAAAAAAA="),
            None,
            "8 bytes is not a CRC32C"
        );
    }

    /// A multipart object's checksum from its parts equals the checksum of its bytes (CRCs),
    /// or the checksum of the parts' checksums (SHA-256), and both round-trip through S3's text.
    #[test]
    fn parts_combine_into_the_object() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let cuts = [0usize, 40_000, 80_000, 100_000];
        for alg in [Algorithm::Crc32c, Algorithm::Crc64nvme, Algorithm::Sha256] {
            let parts: Vec<(Checksum, u64)> = cuts
                .windows(2)
                .map(|w| (Checksum::of(alg, &data[w[0]..w[1]]), (w[1] - w[0]) as u64))
                .collect();
            let got = ObjectChecksum::of_parts(&parts).unwrap();
            if alg.full_object() {
                assert_eq!(got, ObjectChecksum::Full(Checksum::of(alg, &data)), "{alg}");
            } else {
                let cat: Vec<u8> = parts.iter().flat_map(|(c, _)| c.digest.clone()).collect();
                assert_eq!(
                    got,
                    ObjectChecksum::Composite {
                        of_parts: Checksum::of(alg, &cat),
                        parts: 3
                    }
                );
                assert!(got.value().ends_with("=-3"), "{}", got.value());
            }
            assert_eq!(ObjectChecksum::parse(alg, &got.value()), Some(got));
        }
        assert_eq!(
            ObjectChecksum::parse(Algorithm::Sha256, "not base64!"),
            None
        );
    }

    #[test]
    fn modes() {
        assert_eq!(
            ChecksumMode::parse("CRC64NVME"),
            Some(ChecksumMode::Crc64nvme)
        );
        assert_eq!(ChecksumMode::parse("off"), Some(ChecksumMode::Off));
        assert_eq!(ChecksumMode::parse("md5"), None);
        assert_eq!(ChecksumMode::Sha256.always(), Some(Algorithm::Sha256));
        assert_eq!(ChecksumMode::Auto.always(), None);
    }
}
