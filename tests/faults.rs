//! Faults injected between s3ferry and a real S3 server: corrupted request bodies (the server,
//! moto, stores whatever arrives, so only s3ferry's own Content-MD5/ETag checks can notice),
//! dropped connections and bare 5xx answers.

mod support;

use support::proxy::{Fault, corrupting_proxy, faulty_proxy};
use support::*;

const MIB: usize = 1 << 20;

#[test]
fn corrupted_uploads_are_detected_and_resent() {
    let proxy = corrupting_proxy(moto().port, 3, true);
    let home = Home::with_conf(&conf_for(&format!("http://127.0.0.1:{}", proxy.port)));
    let b = bucket("corrupt");
    let src = tempfile::tempdir().unwrap();
    let small = bytes(1000, 1);
    let big = bytes(12 * MIB, 2);
    // One transfer at a time, every other PUT corrupted (3 in all): a-small.bin's first PUT,
    // then big.bin's parts 1 and 2 on their first attempts.
    write(src.path(), "a-small.bin", &small);
    write(src.path(), "big.bin", &big);
    let rep = home.path().join("r.json");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let one_at_a_time = ["--transfers", "1", "--s3-upload-concurrency", "1"];
    let args = [
        &["sync", s, &dst, "--report", rep.to_str().unwrap()][..],
        &one_at_a_time,
        &SMALL_PARTS,
    ]
    .concat();
    let out = s3ferry(&home, &args);
    ok(&out);
    assert_eq!(proxy.corrupted.load(std::sync::atomic::Ordering::SeqCst), 3);
    let r = report(&rep);
    assert_eq!(
        r["retries"], 3,
        "every corrupted request was sent again: {r}"
    );
    assert_eq!(get(&b, "a-small.bin"), small);
    assert_eq!(get(&b, "big.bin"), big);
    let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
    assert!(err.contains("0 differences found"), "{err}");
}

#[test]
fn persistent_corruption_fails_the_file_and_leaves_no_bad_object() {
    let proxy = corrupting_proxy(moto().port, -1, false);
    let home = Home::with_conf(&conf_for(&format!("http://127.0.0.1:{}", proxy.port)));
    let b = bucket("always");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "small.bin", &bytes(1000, 3));
    write(src.path(), "big.bin", &bytes(11 * MIB, 4));
    put(&b, "extra.txt", b"must survive a failed sync");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let args = [&["sync", s, &dst, "--retries", "2"][..], &SMALL_PARTS].concat();
    let out = s3ferry(&home, &args);
    let err = stderr(&out);
    assert_eq!(code(&out), 5, "integrity failures are temporary: {err}");
    assert!(err.contains("small.bin: Failed to copy"), "{err}");
    assert!(err.contains("big.bin: Failed to copy"), "{err}");
    assert!(err.contains("is not the MD5 we sent"), "{err}");
    assert!(
        err.contains("not deleting files as there were IO errors"),
        "{err}"
    );
    let keys: Vec<String> = list(&b).into_iter().map(|o| o.key).collect();
    assert_eq!(
        keys,
        vec!["extra.txt".to_string()],
        "no corrupt object left behind"
    );
    assert!(
        uploads(&b).is_empty(),
        "the failed multipart upload was aborted"
    );
}

#[test]
fn dropped_connections_are_retried_by_the_request_layer() {
    let proxy = faulty_proxy(moto().port, 3, false, Fault::Drop);
    let home = Home::with_conf(&conf_for(&format!("http://127.0.0.1:{}", proxy.port)));
    let b = bucket("drops");
    let src = tempfile::tempdir().unwrap();
    let data = bytes(11 * MIB, 5);
    write(src.path(), "big.bin", &data);
    write(src.path(), "small.bin", b"small");
    let rep = home.path().join("r.json");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let args = [
        &["sync", s, &dst, "--report", rep.to_str().unwrap()][..],
        &SMALL_PARTS,
    ]
    .concat();
    ok(&s3ferry(&home, &args));
    let r = report(&rep);
    assert_eq!(proxy.corrupted.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(r["requests"]["retries"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(r["retries"], 0, "no integrity resends needed: {r}");
    assert_eq!(get(&b, "big.bin"), data);
    assert_eq!(get(&b, "small.bin"), b"small");
}

#[test]
fn a_bare_server_error_is_reported_on_one_short_line() {
    let proxy = faulty_proxy(moto().port, -1, false, Fault::Status500);
    let home = Home::with_conf(&conf_for(&format!("http://127.0.0.1:{}", proxy.port)));
    let b = bucket("bare500");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "small.bin", b"small");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let args = [
        "sync",
        s,
        &dst,
        "--retries",
        "1",
        "--low-level-retries",
        "2",
    ];
    let out = s3ferry(&home, &args);
    let err = stderr(&out);
    assert_ne!(code(&out), 0, "{err}");
    assert!(proxy.corrupted.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    let line = err
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("small.bin"))
        .unwrap_or_else(|| panic!("no error line for small.bin:\n{err}"));
    assert!(
        line.contains("HTTP 500") && line.contains("the server gave no S3 error message"),
        "{line}"
    );
    assert!(
        line.len() < 300,
        "error line is {} bytes: {line}",
        line.len()
    );
}
