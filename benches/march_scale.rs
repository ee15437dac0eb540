//! The march at sizes this machine cannot store: 1 to 10 million objects listed from a server
//! of our own that generates sorted ListObjectsV2 pages on the fly (prefix, delimiter,
//! start-after and continuation tokens, as S3 answers them), merged with a synthetic source
//! that hands the march the same keys a walk of the tree would. It measures what the march
//! itself costs at that size (the listing's chains and ranges, the merge, the pages held):
//! wall time, CPU, and peak RSS, each case in a process of its own so the peaks are its own;
//! with a delay per request, what parallel listing buys at a given round-trip time.
//!
//!   cargo bench --bench march_scale                  every case
//!   cargo bench --bench march_scale -- N RTT_MS PARALLEL   one case
//!
//! The keys are a registry's blobs (`docker/registry/v2/blobs/sha256/XX/<64 hex>/data`, spread
//! over the 256 `XX` directories as digests are), every one on both sides with the same size:
//! the march of a no-op rerun, the largest it can be.

use std::convert::Infallible;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};

use s3ferry::march::walk::{Item, LocalFile};
use s3ferry::march::{LocalSide, March, RemoteSide, Step, list};

const TAIL: &str = "000000000000000000000000000000000000000000000000";
const PAGE: usize = 1000;

/// The key space: `n` keys in sorted order, `key(i)` computed, never stored.
#[derive(Clone, Copy)]
struct Keys {
    n: u64,
    spread: u64,
}

impl Keys {
    fn new(n: u64) -> Keys {
        Keys {
            n,
            spread: u64::MAX / n.max(1),
        }
    }

    fn key(&self, i: u64) -> String {
        let h = format!("{:016x}{TAIL}", i * self.spread);
        format!("docker/registry/v2/blobs/sha256/{}/{h}/data", &h[..2])
    }

    fn size(&self, i: u64) -> u64 {
        1000 + (i * 7919) % 100_000
    }

    /// The first index whose key is greater than `s` (or at least `s`, if `inclusive`).
    fn first_after(&self, s: &str, inclusive: bool) -> u64 {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let k = self.key(mid);
            let before = if inclusive {
                k.as_str() < s
            } else {
                k.as_str() <= s
            };
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// One ListObjectsV2 page, as XML.
fn page(keys: Keys, query: &str) -> String {
    let prefix = param(query, "prefix").unwrap_or_default();
    let after = param(query, "continuation-token").or_else(|| param(query, "start-after"));
    let delimited = param(query, "delimiter").is_some_and(|d| d == "/");
    let mut i = keys.first_after(&prefix, true);
    if let Some(a) = &after {
        i = i.max(keys.first_after(a, false));
    }
    let mut body = String::with_capacity(PAGE * 200);
    let (mut count, mut last) = (0, None::<String>);
    while i < keys.n && count < PAGE {
        let k = keys.key(i);
        if !k.starts_with(&prefix) {
            break;
        }
        if delimited && let Some(pos) = k[prefix.len()..].find('/') {
            let cp = k[..prefix.len() + pos + 1].to_string();
            body.push_str(&format!(
                "<CommonPrefixes><Prefix>{cp}</Prefix></CommonPrefixes>"
            ));
            i = keys.first_after(&format!("{cp}\u{10FFFF}"), false);
            last = Some(cp);
        } else {
            body.push_str(&format!(
                "<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"{:032x}\"</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                i,
                keys.size(i)
            ));
            i += 1;
            last = Some(k);
        }
        count += 1;
    }
    let more = i < keys.n && keys.key(i).starts_with(&prefix);
    let next = match (&last, more) {
        (Some(l), true) => format!("<NextContinuationToken>{l}</NextContinuationToken>"),
        _ => String::new(),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bench</Name><Prefix>{prefix}</Prefix><KeyCount>{count}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>{more}</IsTruncated>{next}{body}</ListBucketResult>"
    )
}

/// Serve listings of `keys` on 127.0.0.1, each answer after `delay` (the round trip).
async fn serve(keys: Keys, delay: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<_>| async move {
                    tokio::time::sleep(delay).await;
                    let q = req.uri().query().unwrap_or("").to_string();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(page(keys, &q)))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// One case, in this process: prints `n rtt parallel wall cpu rss lists`.
fn case(n: u64, rtt_ms: u64, parallel: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let keys = Keys::new(n);
        let addr = serve(keys, Duration::from_millis(rtt_ms)).await;
        let remote = format!(
            ":s3,provider=Other,access_key_id=bench,secret_access_key=bench-secret,endpoint='http://{addr}':bench"
        );
        let (store, _) = s3ferry::cli::app::open_store(&[], &remote)
            .await
            .expect("store");
        let started = Instant::now();
        let cpu0 = cpu_seconds();
        let listing = list::start(&store, &Default::default(), parallel)
            .await
            .expect("listing");
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(async move {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            for i in 0..keys.n {
                let rel = keys.key(i);
                let f = LocalFile {
                    path: rel.clone().into(),
                    rel,
                    size: keys.size(i),
                    mtime: t,
                    ctime: t,
                };
                if tx.send(Item::File(f)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Item::End).await;
        });
        let mut march = March::new(LocalSide::new(rx), RemoteSide::new(listing), None);
        let (mut both, mut other) = (0u64, 0u64);
        while let Some(m) = march.next().await {
            match m.expect("march").step {
                Step::Both(s, d) if s.size == d.size => both += 1,
                _ => other += 1,
            }
        }
        assert_eq!((both, other), (n, 0), "every key on both sides, once");
        let lists = store.requests.snapshot().list;
        println!(
            "{n}\t{rtt_ms}\t{parallel}\t{:.2}\t{:.2}\t{:.0}\t{lists}",
            started.elapsed().as_secs_f64(),
            cpu_seconds() - cpu0,
            peak_rss_mib()
        );
    });
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [n, rtt, parallel] = &args[..] {
        case(
            n.parse().unwrap(),
            rtt.parse().unwrap(),
            parallel.parse().unwrap(),
        );
        return;
    }
    let cases: &[(u64, u64, usize)] = &[
        (1_000_000, 0, 16),
        (3_000_000, 0, 16),
        (10_000_000, 0, 16),
        (1_000_000, 5, 1),
        (1_000_000, 5, 16),
        (10_000_000, 5, 1),
        (10_000_000, 5, 16),
        (10_000_000, 5, 64),
    ];
    println!(
        "| objects | RTT ms | listing chains | wall s | µs per object | CPU s | peak RSS MiB | LIST requests |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let me = std::env::current_exe().unwrap();
    for &(n, rtt, parallel) in cases {
        let out = std::process::Command::new(&me)
            .args([n.to_string(), rtt.to_string(), parallel.to_string()])
            .output()
            .expect("run a case");
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().last().filter(|_| out.status.success()) else {
            println!(
                "| {n} | {rtt} | {parallel} | failed: {} |",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            continue;
        };
        let f: Vec<&str> = line.split('\t').collect();
        let wall: f64 = f[3].parse().unwrap();
        println!(
            "| {n} | {rtt} | {parallel} | {wall:.1} | {:.2} | {} | {} | {} |",
            wall * 1e6 / n as f64,
            f[4],
            f[5],
            f[6]
        );
    }
}
