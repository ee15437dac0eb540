//! The mutation tier: files that change while s3ferry reads them. Every combination of
//! engine (io_uring, pread, and `auto` where a seccomp filter refuses io_uring) × reads past
//! the page cache (`auto`, `off`) × size (empty, one PUT, several parts, an unaligned tail) ×
//! mutation (truncate, grow, replace by rename, unlink, rewrite in place) runs once during
//! `sync` and once during `check`, the mutation at a moment drawn from a fixed seed. Every
//! run must end within its bound; `sync` must exit 0 or 5 ("changed while being read"), and
//! the object must be absent, the old content or the new, never a mix; `check` must exit 0
//! with "0 differences found" or 1 without it.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::*;

const MIB: usize = 1 << 20;
/// No run may take longer: a run still going then has hung.
const BOUND: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Engine {
    Uring,
    Pread,
    /// `--io-engine auto` with io_uring refused by a seccomp filter: the pread fallback.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mutation {
    Truncate,
    Grow,
    RenameReplace,
    Unlink,
    /// Cut to nothing, then written again to the same size with other bytes.
    Rewrite,
}

const SIZES: [usize; 4] = [0, 100_000, 15 * MIB, 10 * MIB + 1234];
const MUTATIONS: [Mutation; 5] = [
    Mutation::Truncate,
    Mutation::Grow,
    Mutation::RenameReplace,
    Mutation::Unlink,
    Mutation::Rewrite,
];

#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    engine: Engine,
    direct: &'static str,
    size: usize,
    mutation: Mutation,
    /// When the mutation happens after the run starts.
    delay: Duration,
}

/// Every combination, each with its moment from a fixed-seed generator.
fn cases() -> Vec<Case> {
    let mut seed = 0x5eed_u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut out = Vec::new();
    for engine in [Engine::Uring, Engine::Pread, Engine::Refused] {
        for direct in ["auto", "off"] {
            for size in SIZES {
                for mutation in MUTATIONS {
                    out.push(Case {
                        n: out.len(),
                        engine,
                        direct,
                        size,
                        mutation,
                        delay: Duration::from_millis(next() % 400),
                    });
                }
            }
        }
    }
    out
}

/// The file's content after the mutation (`None`: no file).
fn mutate(path: &Path, old: &[u8], m: Mutation) -> Option<Vec<u8>> {
    let other = |len: usize| bytes(len, 0xfeed);
    match m {
        Mutation::Truncate => {
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.set_len(old.len() as u64 / 2).unwrap();
            Some(old[..old.len() / 2].to_vec())
        }
        Mutation::Grow => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(&[0xab; 4096]).unwrap();
            Some([old, &[0xab; 4096]].concat())
        }
        Mutation::RenameReplace => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, other(old.len())).unwrap();
            std::fs::rename(&tmp, path).unwrap();
            Some(other(old.len()))
        }
        Mutation::Unlink => {
            std::fs::remove_file(path).unwrap();
            None
        }
        Mutation::Rewrite => {
            std::fs::write(path, other(old.len())).unwrap();
            Some(other(old.len()))
        }
    }
}

/// One case's source: the file that changes, and one that does not (so that the source is
/// never empty).
fn source(case: &Case) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "keep.txt", b"steady");
    let old = bytes(case.size, case.n as u64 + 1);
    let f = write(d.path(), "f.bin", &old);
    (d, f, old)
}

fn flags(case: &Case) -> Vec<&'static str> {
    let engine = match case.engine {
        Engine::Uring => "uring",
        Engine::Pread => "pread",
        Engine::Refused => "auto",
    };
    let mut f = vec!["--io-engine", engine, "--direct-io", case.direct];
    f.extend(SMALL_PARTS);
    f
}

/// Run s3ferry with the case's engine, mutating the file after the case's delay; the run's
/// exit code and log, and what the file became.
fn run_mutated(
    home: &Home,
    case: &Case,
    args: &[&str],
    file: &Path,
    old: &[u8],
) -> (i32, String, Option<Vec<u8>>) {
    let mut cmd = command(home, args, &[]);
    if matches!(case.engine, Engine::Refused) {
        block_io_uring(&mut cmd);
    }
    let run = Bounded::start(&mut cmd);
    let started = Instant::now();
    std::thread::sleep(case.delay);
    let new = mutate(file, old, case.mutation);
    let what = format!("{case:?}: {args:?} (it hung)");
    let out = run.wait(BOUND.saturating_sub(started.elapsed()), &what);
    (code(&out), stderr(&out), new)
}

/// Run `each` over the cases, a few at a time; every failure is collected, then reported,
/// with how many runs ended with each exit code.
fn over_cases(each: impl Fn(&Case) -> Result<i32, String> + Sync) {
    let cases = cases();
    let failures = Mutex::new(Vec::new());
    let codes = Mutex::new(std::collections::BTreeMap::<i32, usize>::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    match each(case) {
                        Ok(code) => *codes.lock().unwrap().entry(code).or_default() += 1,
                        Err(e) => failures.lock().unwrap().push(format!("{case:?}: {e}")),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "{} mutation cases run, {} failed; exit codes: {:?}",
        cases.len(),
        failures.len(),
        codes.into_inner().unwrap()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn object(b: &str, key: &str) -> Option<Vec<u8>> {
    list(b).iter().any(|o| o.key == key).then(|| get(b, key))
}

#[test]
fn sync_of_files_that_change_while_read_ends_and_uploads_old_or_new_never_a_mix() {
    let home = Home::new();
    let b = bucket("mutations-sync");
    over_cases(|case| {
        let (src, file, old) = source(case);
        let dst = format!("harbor-s3:{b}/c{}", case.n);
        let mut args = vec!["sync", src.path().to_str().unwrap(), &dst];
        // Slow enough that a mutation can land while a large file is being read.
        args.extend(["--bwlimit", "24M", "--max-buffer-memory", "16M"]);
        args.extend(flags(case));
        let (code, err, new) = run_mutated(&home, case, &args, &file, &old);
        let got = object(&b, &format!("c{}/f.bin", case.n));
        match code {
            0 => {}
            5 if err.contains("f.bin: changed while being read") => {}
            _ => return Err(format!("exit {code}:\n{err}")),
        }
        let fine = match &got {
            None => code == 5 || new.is_none(),
            Some(g) => *g == old || new.as_ref() == Some(g),
        };
        if !fine {
            return Err(format!(
                "exit {code}: the object ({:?} bytes) is neither absent, the old content nor the new:\n{err}",
                got.map(|g| g.len())
            ));
        }
        Ok(code)
    });
}

#[test]
fn check_of_files_that_change_while_read_ends_and_never_says_0_differences_wrongly() {
    let home = Home::new();
    let b = bucket("mutations-check");
    over_cases(|case| {
        let (src, file, old) = source(case);
        let s = src.path().to_str().unwrap();
        let dst = format!("harbor-s3:{b}/c{}", case.n);
        let out = s3ferry_bounded(
            &home,
            &[&["copy", s, &dst][..], &SMALL_PARTS].concat(),
            &[],
            BOUND,
        );
        if code(&out) != 0 {
            return Err(format!(
                "the upload before the check failed:\n{}",
                stderr(&out)
            ));
        }
        let args = [&["check", s, &dst, "--one-way"][..], &flags(case)].concat();
        let (code, err, _) = run_mutated(&home, case, &args, &file, &old);
        let zero = err.contains(": 0 differences found");
        match code {
            // The file was read whole before it changed, or renamed over once it was open.
            0 if zero => Ok(0),
            1 if !zero && err.contains("differences found") => Ok(1),
            _ => Err(format!("exit {code}:\n{err}")),
        }
    });
}
