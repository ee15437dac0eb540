//! Checksum throughput: what each S3 checksum costs per byte beside the MD5 every upload
//! computes. `cargo bench --bench checksums` prints MB/s on one core for 16 MiB buffers (the
//! size of a part), for MD5, CRC32C, CRC64NVME and SHA-256, as s3ferry computes them.

use std::time::Instant;

use md5::Digest;
use s3ferry::read::checksum::{Algorithm, Checksum};

fn rate(name: &str, bytes: usize, rounds: usize, mut f: impl FnMut()) {
    f(); // warm
    let t = Instant::now();
    for _ in 0..rounds {
        f();
    }
    let s = t.elapsed().as_secs_f64();
    let mbs = (bytes * rounds) as f64 / 1e6 / s;
    println!("| {name} | {mbs:.0} | {:.3} |", 1e3 / mbs);
}

fn main() {
    let n = 16 << 20;
    let data: Vec<u8> = (0..n as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    println!("16 MiB buffers, one core");
    println!("| checksum | MB/s | CPU s per GB |");
    println!("|---|---:|---:|");
    rate("MD5 (md-5)", n, 8, || {
        std::hint::black_box(md5::Md5::digest(&data));
    });
    for (name, alg, rounds) in [
        ("CRC32C (crc-fast)", Algorithm::Crc32c, 64),
        ("CRC64NVME (crc-fast)", Algorithm::Crc64nvme, 64),
        ("SHA-256 (sha2)", Algorithm::Sha256, 8),
    ] {
        rate(name, n, rounds, || {
            std::hint::black_box(Checksum::of(alg, &data));
        });
    }
}
