//! Read-path benchmark: the io_uring engine against pread on the same files, warm page cache.
//! `cargo bench --bench read_engines [-- FILES]` prints files/s, MB/s and CPU-seconds per engine
//! for many 71-byte files (registry links) and for 16 MiB ranges of a 256 MiB file.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use s3ferry::read::{Budget, IoEngine, IoEngineMode, SourceFile, Stamp};

fn cpu() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

fn stamp(p: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(p).unwrap();
    Stamp {
        size: m.len(),
        mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let mut small = Vec::new();
    for i in 0..n {
        let p = dir.path().join(format!("{:02x}/{i}", i % 256));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("sha256:{i:064x}")).unwrap();
        small.push((p.clone(), stamp(&p)));
    }
    let big = dir.path().join("big");
    std::fs::write(&big, vec![7u8; 256 << 20]).unwrap();
    let rings = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    println!("{n} files of 71 B; 256 MiB in 16 MiB ranges; {rings} rings; 64 reads in flight");
    println!("| engine | small files/s | CPU s (small) | large MB/s | CPU s (large) |");
    println!("|---|---|---|---|---|");
    for mode in [
        IoEngineMode::Pread,
        IoEngineMode::Uring,
        IoEngineMode::Pread,
        IoEngineMode::Uring,
    ] {
        let (engine, _) = match IoEngine::choose(mode, rings, s3ferry::read::DirectIo::Auto) {
            Ok(e) => e,
            Err(why) => {
                println!("| {mode:?} | unavailable: {why} | | | |");
                continue;
            }
        };
        let (t0, c0) = (Instant::now(), cpu());
        let sem = Arc::new(tokio::sync::Semaphore::new(64));
        let budget = Budget::new(1 << 30);
        let mut set = tokio::task::JoinSet::new();
        for (p, st) in small.clone() {
            let (e, sem, budget) = (engine.clone(), sem.clone(), budget.clone());
            set.spawn(async move {
                let _p = sem.acquire_owned().await;
                let buf = budget.buffer(st.size).await;
                e.read_whole("bench", &p, st, buf, false, None)
                    .await
                    .unwrap()
                    .0
                    .len()
            });
        }
        let mut bytes = 0;
        while let Some(r) = set.join_next().await {
            bytes += r.unwrap();
        }
        assert_eq!(bytes, 71 * n);
        let (small_t, small_c) = (t0.elapsed(), cpu() - c0);

        let (t0, c0) = (Instant::now(), cpu());
        let f = Arc::new(SourceFile::open(&big, stamp(&big)).unwrap());
        let mut set = tokio::task::JoinSet::new();
        for i in 0..16u64 {
            let (e, f, budget) = (engine.clone(), f.clone(), budget.clone());
            set.spawn(async move {
                let buf = budget.buffer(1 << 24).await;
                e.read_at("bench", &f, i << 24, buf).await.unwrap().0.len()
            });
        }
        let mut big_bytes = 0;
        while let Some(r) = set.join_next().await {
            big_bytes += r.unwrap();
        }
        let (big_t, big_c) = (t0.elapsed(), cpu() - c0);
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.2} |",
            engine.name(),
            n as f64 / small_t.as_secs_f64(),
            small_c.as_secs_f64(),
            big_bytes as f64 / 1e6 / big_t.as_secs_f64(),
            big_c.as_secs_f64()
        );
    }
}
