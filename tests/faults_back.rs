//! Faults on the way back: restores and bucket copies meet bodies cut short, bodies longer
//! than the object, objects replaced between requests (412 from `If-Match`), a server that
//! keeps answering 503, a partial file replaced while it is written, a full filesystem and a
//! read-only one. Each ends within its bound with one line naming the object and what to do,
//! the documented exit code, and no file left under a name that was not proven.

mod support;

use std::path::Path;
use std::time::Duration;

use support::badserver::{Reply, bad_server};
use support::*;

/// Short timeouts and few retries: faults are found in seconds.
const FAST: [&str; 6] = [
    "--timeout",
    "1s",
    "--contimeout",
    "1s",
    "--low-level-retries",
    "2",
];
const BOUND: Duration = Duration::from_secs(60);

/// A listing of single-part objects with their sizes and MD5 ETags.
fn listing(objects: &[(&str, Vec<u8>)]) -> Reply {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bkt</Name><Prefix></Prefix><IsTruncated>false</IsTruncated>",
    );
    for (k, data) in objects {
        x.push_str(&format!(
            "<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"{}\"</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            md5_hex(data),
            data.len()
        ));
    }
    x.push_str("</ListBucketResult>");
    Reply::xml(200, x)
}

fn object_headers(data: &[u8]) -> Vec<(String, String)> {
    vec![
        ("ETag".into(), format!("\"{}\"", md5_hex(data))),
        (
            "Last-Modified".into(),
            "Thu, 01 Jan 2026 00:00:00 GMT".into(),
        ),
    ]
}

/// Everything left in `dir` (names, sorted), hidden partial files included.
fn left(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn error_line<'a>(err: &'a str, key: &str) -> &'a str {
    err.lines()
        .find(|l| l.contains("ERROR") && l.contains(&format!("\"{key}\"")))
        .unwrap_or_else(|| panic!("no error line names {key:?}:\n{err}"))
}

/// The source of the protocol faults: one object per fault, beside one good object.
fn faulty_source(dst_for_swap: Option<std::path::PathBuf>) -> support::badserver::BadServer {
    let objects: Vec<(&str, Vec<u8>)> = vec![
        ("busy", bytes(100, 1)),
        ("cut", bytes(1000, 2)),
        ("gone", bytes(100, 3)),
        ("good", b"good".to_vec()),
        ("long", b"four".to_vec()),
        ("swap", bytes(100, 4)),
    ];
    bad_server(move |req, _| {
        let key = req.path.rsplit('/').next().unwrap_or_default().to_string();
        let data = objects
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, d)| d.clone());
        match (req.method.as_str(), key.as_str(), data) {
            // The restore's look for a registry layout lists under prefixes: nothing there.
            ("GET", _, _)
                if req.is_list() && req.param("prefix").is_some_and(|p| !p.is_empty()) =>
            {
                Reply::list_page(&[], false, None)
            }
            ("GET", _, _) if req.is_list() => {
                let wanted: Vec<(&str, Vec<u8>)> = objects
                    .iter()
                    .filter(|(k, _)| match dst_for_swap {
                        Some(_) => *k == "swap" || *k == "good",
                        None => *k != "swap",
                    })
                    .map(|(k, d)| (*k, d.clone()))
                    .collect();
                listing(&wanted)
            }
            ("GET", "busy", _) => Reply::error(503, "SlowDown", "Please reduce your request rate."),
            ("GET", "cut", Some(d)) => Reply::Cut {
                headers: object_headers(&d),
                len: d.len(),
                sent: d[..d.len() / 2].to_vec(),
            },
            ("GET", "gone", _) => Reply::error(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            ),
            ("GET", "long", Some(d)) => Reply::Answer {
                status: 200,
                headers: object_headers(&d),
                body: b"four, and more".to_vec(),
            },
            ("GET", "swap", Some(d)) => {
                // Something else takes the hidden name while the restore writes it.
                if let Some(dst) = &dst_for_swap {
                    let planted = dst.join("planted");
                    std::fs::write(&planted, &d).unwrap();
                    std::fs::rename(&planted, dst.join(".swap.s3ferry-partial")).unwrap();
                }
                Reply::Answer {
                    status: 200,
                    headers: object_headers(&d),
                    body: d,
                }
            }
            ("GET" | "HEAD", _, Some(d)) => Reply::Answer {
                status: 200,
                headers: object_headers(&d),
                body: if req.method == "GET" { d } else { Vec::new() },
            },
            _ => Reply::error(404, "NoSuchKey", "The specified key does not exist."),
        }
    })
}

/// Bodies cut short or too long, an object replaced (412) and a server that answers only
/// 503: each one line naming the key, exit 5 (a rerun may get past them), no file and no
/// partial file left for any of them, and the good object restored.
#[test]
fn a_restore_ends_on_every_protocol_fault_with_one_line_each() {
    let server = faulty_source(None);
    let home = Home::with_conf(&conf_for(&server.endpoint()));
    let dst = tempfile::tempdir().unwrap();
    let args = [
        &["copy", "harbor-s3:bkt", dst.path().to_str().unwrap()][..],
        &FAST,
    ]
    .concat();
    let out = s3ferry_bounded(&home, &args, &[], BOUND);
    let err = stderr(&out);
    assert_eq!(code(&out), 5, "{err}");
    assert!(error_line(&err, "busy").contains("SlowDown"), "{err}");
    assert!(!error_line(&err, "cut").is_empty());
    assert!(
        error_line(&err, "gone").contains("replaced while it was being read"),
        "{err}"
    );
    assert!(error_line(&err, "long").contains("bytes received"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("ERROR")).count(),
        4,
        "{err}"
    );
    assert_eq!(left(dst.path()), ["good"], "{err}");
    assert_eq!(std::fs::read(dst.path().join("good")).unwrap(), b"good");
}

/// A partial file replaced while the restore writes it (another writer in the directory):
/// what took its place is never renamed under the object's name nor removed, exit 6.
#[test]
fn a_partial_file_replaced_during_a_restore_is_never_renamed_into_place() {
    let dst = tempfile::tempdir().unwrap();
    let server = faulty_source(Some(dst.path().to_path_buf()));
    let home = Home::with_conf(&conf_for(&server.endpoint()));
    let args = [
        &["copy", "harbor-s3:bkt", dst.path().to_str().unwrap()][..],
        &FAST,
    ]
    .concat();
    let out = s3ferry_bounded(&home, &args, &[], BOUND);
    let err = stderr(&out);
    assert_eq!(code(&out), 6, "{err}");
    assert!(
        err.contains(".swap.s3ferry-partial: was replaced while the restore wrote it"),
        "{err}"
    );
    assert_eq!(left(dst.path()), [".swap.s3ferry-partial", "good"], "{err}");
}

/// Streamed bucket copies meet the same faults on their GETs: the same lines, exit 5, and
/// nothing written to the destination bucket for them.
#[test]
fn a_bucket_copy_ends_on_protocol_faults_and_writes_nothing_unproven() {
    let server = faulty_source(None);
    let dst = bucket("faults-back-copy");
    let conf = format!(
        "{}\n{}",
        conf_for(&endpoint()),
        conf_for(&server.endpoint()).replace("[harbor-s3]", "[faulty]")
    );
    let home = Home::with_conf(&conf);
    let to = format!("harbor-s3:{dst}");
    let args = [&["copy", "faulty:bkt", &to][..], &FAST].concat();
    let out = s3ferry_bounded(&home, &args, &[], BOUND);
    let err = stderr(&out);
    assert_eq!(code(&out), 5, "{err}");
    for key in ["busy", "cut", "gone", "long"] {
        error_line(&err, key);
    }
    let keys: Vec<String> = list(&dst).into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["good"], "{err}");
    assert!(uploads(&dst).is_empty(), "no upload left behind");
}

/// A small filesystem of our own (tmpfs), unmounted when dropped.
struct Mount(tempfile::TempDir);

impl Mount {
    fn tmpfs(size: &str) -> Mount {
        let d = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(d.path())
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI and the test machines run as root)"
        );
        Mount(d)
    }

    fn read_only(&self) {
        let st = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.0.path())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// A destination that fills up: the object that does not fit is one line saying the
/// destination is full and what to do (exit 6), its partial file is removed (the space is
/// given back), and the object that fits is restored. A read-only destination is one line
/// before anything is fetched (exit 2).
#[test]
fn a_full_or_read_only_destination_is_one_line_naming_the_fix() {
    let home = Home::new();
    let b = bucket("faults-back-full");
    put(&b, "big", &bytes(3 << 20, 5));
    put(&b, "small", b"fits");
    let m = Mount::tmpfs("1m");
    let d = m.0.path().to_str().unwrap();
    let out = s3ferry_bounded(&home, &["copy", &format!("harbor-s3:{b}"), d], &[], BOUND);
    let err = stderr(&out);
    assert_eq!(code(&out), 6, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(".big.s3ferry-partial") && lines[0].contains("the destination is full"),
        "{err}"
    );
    assert_eq!(left(m.0.path()), ["small"], "{err}");

    m.read_only();
    let out = s3ferry_bounded(&home, &["copy", &format!("harbor-s3:{b}"), d], &[], BOUND);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("read-only: mount it read-write"), "{err}");
}

/// An object replaced between two ranged GETs of a restore: the GETs after it are refused
/// by `If-Match` (412), the object is one line saying it was replaced (exit 5), the parts
/// proven of the old version are not kept (a rerun could not use them), and the rerun
/// restores the new version.
#[test]
fn an_object_replaced_between_ranged_gets_is_restored_whole_on_the_rerun() {
    const MIB: usize = 1 << 20;
    let home = Home::new();
    let b = bucket("faults-back-replaced");
    put_multipart(&b, "mp", &bytes(20 * MIB, 6), 5 * MIB);
    let dst = tempfile::tempdir().unwrap();
    let d = dst.path().to_str().unwrap();
    let src = format!("harbor-s3:{b}");
    // Slow, one part per group: the first parts are proven well before the last are asked.
    let args = [
        "copy",
        &src,
        d,
        "--bwlimit",
        "3M",
        "--max-buffer-memory",
        "10M",
    ];
    let run = Bounded::start(&mut command(&home, &args, &[]));
    // Replace the object while the first two parts arrive (3.3 s at 3 MiB/s: the last two
    // are asked after them), counted from when the restore has begun, not from a guess of
    // when it starts: a loaded machine may start it late, or make the replacing PUT slow.
    let begun = || {
        std::fs::read_dir(dst.path()).is_ok_and(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(".s3ferry-partial")
            })
        })
    };
    let started = std::time::Instant::now();
    while !begun() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the restore did not begin in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let new = bytes(20 * MIB, 7);
    put(&b, "mp", &new);
    let out = run.wait(BOUND, "the restore");
    let err = stderr(&out);
    assert_eq!(code(&out), 5, "{err}");
    assert!(
        error_line(&err, "mp").contains("replaced while it was being read"),
        "{err}"
    );
    assert!(
        left(dst.path()).is_empty(),
        "no partial file, no ledger: {err}"
    );
    let err = ok(&s3ferry_bounded(&home, &["copy", &src, d], &[], BOUND));
    assert_eq!(std::fs::read(dst.path().join("mp")).unwrap(), new, "{err}");
}
