//! The unhappy paths a migration Job meets: servers that hang, stall, fail, or break the S3
//! protocol (our misbehaving server), configuration mistakes, secrets, hostile file names and
//! leftover multipart uploads. Every run here is bounded in time, and every failure must come
//! out as one line with the documented exit code.

mod support;

use std::time::{Duration, Instant};

use support::badserver::{Reply, bad_server, listing_server, unanswered_port};
use support::*;

/// Fast timeouts and few retries, so a fault shows within seconds.
const FAST: [&str; 6] = [
    "--timeout",
    "1s",
    "--contimeout",
    "1s",
    "--low-level-retries",
    "2",
];

/// A source directory with a couple of files.
fn source() -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "a.txt", b"alpha");
    write_old(src.path(), "dir/b.txt", b"bravo");
    src
}

/// Run against `endpoint` with the seed's config shape; output, exit code and how long it took.
fn run_at(endpoint: &str, args: &[&str], limit: Duration) -> (String, i32, Duration) {
    let home = Home::with_conf(&conf_for(endpoint));
    let start = Instant::now();
    let out = s3ferry_bounded(&home, args, &[], limit);
    (stderr(&out), code(&out), start.elapsed())
}

fn sync_at(endpoint: &str, src: &tempfile::TempDir, extra: &[&str]) -> (String, i32, Duration) {
    let s = src.path().to_str().unwrap();
    let args = [&["sync", s, "harbor-s3:bkt"][..], &FAST, extra].concat();
    run_at(endpoint, &args, Duration::from_secs(60))
}

/// Lines at ERROR level.
fn errors(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.contains("ERROR")).collect()
}

/// Every line of the log is one record: a timestamp and a level.
#[track_caller]
fn one_record_per_line(err: &str) {
    for line in err.lines() {
        let b = line.as_bytes();
        assert!(
            b.len() > 20 && b[4] == b'/' && b[7] == b'/' && b[13] == b':',
            "not a log record: {line:?}\n{err}"
        );
    }
}

#[test]
fn a_server_that_never_answers_fails_within_the_idle_timeout() {
    let server = bad_server(|_, _| Reply::Blackhole);
    let src = source();
    let (err, code, took) = sync_at(&server.endpoint(), &src, &[]);
    assert_eq!(code, 5, "a stall is temporary: {err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let lines = errors(&err);
    assert!(!lines.is_empty(), "{err}");
    let line = lines[0];
    assert!(
        line.contains(&format!("127.0.0.1:{}", server.port)) && line.contains("--timeout"),
        "the line names the endpoint and the timeout: {line}"
    );
    assert_eq!(
        server.total(),
        2,
        "retried once (--low-level-retries 2): {err}"
    );
    one_record_per_line(&err);
}

#[test]
fn a_connect_that_never_completes_fails_within_contimeout() {
    let port = unanswered_port();
    let src = source();
    let (err, code, took) = sync_at(&format!("http://127.0.0.1:{port}"), &src, &[]);
    assert_eq!(code, 5, "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let line = errors(&err)[0];
    assert!(
        line.contains(&format!("127.0.0.1:{port}")) && line.contains("--contimeout"),
        "{line}"
    );
}

#[test]
fn a_listing_that_stalls_mid_body_times_out() {
    let server = listing_server(|_| Reply::Stall {
        status: 200,
        len: 4000,
        sent: b"<?xml version=\"1.0\"?><ListBucketResult><Name>bkt</Name>".to_vec(),
    });
    let src = source();
    let (err, code, took) = sync_at(&server.endpoint(), &src, &[]);
    assert_eq!(code, 5, "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(err.contains("--timeout"), "{err}");
    assert!(server.total() >= 2, "a stalled answer is retried: {err}");
}

#[test]
fn a_server_that_drips_an_answer_is_cut_off_by_the_request_ceiling() {
    // One byte every 300 ms never lets the 1 s idle timeout fire; the ceiling (2 × --timeout
    // for a request without a body) does.
    let server = bad_server(|_, _| Reply::Drip {
        len: 100_000,
        every: Duration::from_millis(300),
    });
    let src = source();
    let (err, code, took) = sync_at(&server.endpoint(), &src, &[]);
    assert_eq!(code, 5, "{err}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(err.contains("ceiling"), "{err}");
    assert_eq!(server.total(), 2, "retried once: {err}");
}

#[test]
fn an_upload_whose_body_the_server_stops_reading_times_out() {
    let server = bad_server(|req, _| match req.method.as_str() {
        "GET" if req.is_list() => Reply::list_page(&[], false, None),
        "GET" => Reply::no_uploads(),
        _ => Reply::Blackhole,
    });
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "big.bin", &bytes(24 << 20, 7));
    let (err, code, took) = sync_at(&server.endpoint(), &src, &[]);
    assert_eq!(code, 5, "{err}");
    assert!(took < Duration::from_secs(40), "took {took:?}");
    let line = errors(&err)[0];
    assert!(
        line.contains("big.bin") && line.contains("--timeout"),
        "{line}"
    );
}

#[test]
fn server_errors_are_one_line_with_the_right_class() {
    /// Status, the S3 error (code, message) in the body if any, the exit code.
    type Case = (u16, Option<(&'static str, &'static str)>, i32);
    let cases: [Case; 5] = [
        (503, None, 5),
        (
            500,
            Some(("InternalError", "We encountered an internal error.")),
            5,
        ),
        (403, None, 6),
        (403, Some(("AccessDenied", "Access Denied")), 6),
        (400, Some(("InvalidArgument", "bad\nthing")), 6),
    ];
    for (status, body, want) in cases {
        let server = bad_server(move |_, _| match body {
            Some((c, m)) => Reply::error(status, c, m),
            None => Reply::status(status, ""),
        });
        let src = source();
        let (err, code, took) = sync_at(&server.endpoint(), &src, &[]);
        assert_eq!(code, want, "HTTP {status} {body:?}: {err}");
        assert!(took < Duration::from_secs(30), "took {took:?}");
        let lines = errors(&err);
        assert_eq!(lines.len(), 1, "one line for the failure: {err}");
        assert!(lines[0].len() < 300, "{}", lines[0]);
        one_record_per_line(&err);
        if want == 5 {
            assert_eq!(server.total(), 2, "temporary: retried: {err}");
        } else {
            assert_eq!(server.total(), 1, "permanent: not retried: {err}");
        }
    }
}

#[test]
fn a_repeated_continuation_token_is_a_protocol_error_not_a_loop() {
    // Directory discovery, which runs beside the chain, finds nothing.
    let server = listing_server(|_| Reply::list_page(&["a.txt"], true, Some("SAME")));
    let src = source();
    let (err, code, took) = sync_at(&server.endpoint(), &src, &[]);
    assert_eq!(code, 6, "{err}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(err.contains("repeated a continuation token"), "{err}");
    assert!(server.total() < 10, "{} requests", server.total());
    assert_eq!(server.count(|r| r.starts_with("DELETE")), 0);
}

#[test]
fn a_truncated_page_without_a_token_is_a_protocol_error() {
    let server = listing_server(|_| Reply::list_page(&["zzz-only-in-bucket"], true, None));
    let src = source();
    let (err, code, _) = sync_at(&server.endpoint(), &src, &[]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("IsTruncated"), "{err}");
    assert_eq!(
        server.count(|r| r.starts_with("DELETE")),
        0,
        "no delete from it"
    );
}

#[test]
fn listings_that_go_backwards_or_stray_are_protocol_errors() {
    type Pages = fn(Option<&str>) -> Reply;
    let cases: [(&str, Pages); 3] = [
        ("keys out of order", |_| {
            Reply::list_page(&["pre/b.txt", "pre/a.txt"], false, None)
        }),
        ("outside the requested prefix", |_| {
            Reply::list_page(&["other/a.txt"], false, None)
        }),
        ("does not advance", |token| match token {
            None => Reply::list_page(&["pre/m.txt"], true, Some("T1")),
            Some(_) => Reply::list_page(&["pre/a.txt"], false, None),
        }),
    ];
    for (want, pages) in cases {
        let server = listing_server(move |req| pages(req.param("continuation-token")));
        let src = source();
        let s = src.path().to_str().unwrap();
        let args = [&["sync", s, "harbor-s3:bkt/pre"][..], &FAST].concat();
        let (err, code, _) = run_at(&server.endpoint(), &args, Duration::from_secs(60));
        assert_eq!(code, 6, "{want}: {err}");
        assert!(err.contains(want), "{want}: {err}");
        assert_eq!(server.count(|r| r.starts_with("DELETE")), 0);
    }
}

#[test]
fn a_success_status_with_a_body_that_is_not_xml_is_a_protocol_error() {
    let server =
        bad_server(|_, _| Reply::status(200, "<html><body>Welcome to nginx!</body></html>"));
    let src = source();
    let (err, code, _) = sync_at(&server.endpoint(), &src, &[]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("not the expected XML"), "{err}");
    assert!(!err.contains("gave no"), "{err}");
    assert_eq!(server.total(), 1, "not retried");
}

#[test]
fn configuration_mistakes_are_exit_2_before_any_request() {
    let src = source();
    let s = src.path().to_str().unwrap();
    // An endpoint with another scheme.
    let (err, code, took) = run_at(
        "ftp://127.0.0.1:21",
        &["sync", s, "harbor-s3:bkt"],
        Duration::from_secs(20),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("http://") && took < Duration::from_secs(5),
        "{err}"
    );
    // No endpoint for a provider that has no default.
    let home = Home::with_conf(
        "[harbor-s3]\ntype = s3\nprovider = Minio\naccess_key_id = AKIDTESTS3FERRY\nsecret_access_key = s3ferry-test-secret-value\n",
    );
    let start = Instant::now();
    let out = s3ferry_bounded(
        &home,
        &["sync", s, "harbor-s3:bkt"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(code_of(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs an endpoint"),
        "{}",
        stderr(&out)
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

fn code_of(o: &std::process::Output) -> i32 {
    code(o)
}

#[test]
fn https_to_a_plain_http_port_says_so_and_is_not_retried() {
    // moto answers a TLS ClientHello as a plain HTTP server does.
    let src = source();
    let endpoint = format!("https://127.0.0.1:{}", moto().port);
    let (err, code, took) = sync_at(&endpoint, &src, &[]);
    assert_eq!(code, 2, "a configuration mistake: {err}");
    assert!(
        err.contains("did not answer TLS") && err.contains("http://"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "not retried: {took:?}");
    assert_eq!(errors(&err).len(), 1, "{err}");
}

#[test]
fn a_config_line_missing_its_equals_never_shows_the_secret() {
    let src = source();
    let s = src.path().to_str().unwrap();
    let secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYzz9Secret";
    let conf = format!(
        "[harbor-s3]\ntype = s3\nprovider = Minio\naccess_key_id = AKIDTESTS3FERRY\nsecret_access_key\n{secret}\nendpoint = {}\n",
        endpoint()
    );
    let home = Home::with_conf(&conf);
    let out = s3ferry_bounded(
        &home,
        &["sync", s, "harbor-s3:bkt", "-vv"],
        &[],
        Duration::from_secs(20),
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("line 5"), "names the line: {err}");
    assert!(
        !err.to_lowercase().contains(&secret.to_lowercase()),
        "{err}"
    );
}

#[test]
fn no_secret_or_whole_key_id_in_any_output_at_any_verbosity() {
    let b = bucket("secrets");
    let src = source();
    let s = src.path().to_str().unwrap();
    let home = Home::new();
    let rep = home.path().join("r.json");
    let dst = format!("harbor-s3:{b}");
    // A session token is sent (and signed) with every request; moto ignores it.
    let token = "FQoGZXIvYXdzEXAMPLEsessionTOKENvalue0123456789";
    let env = [("RCLONE_CONFIG_HARBOR_S3_SESSION_TOKEN", token)];
    for args in [
        vec!["sync", s, &dst, "-vvv", "--report", rep.to_str().unwrap()],
        vec!["check", s, &dst, "-vvv", "--use-json-log"],
    ] {
        let out = s3ferry_bounded(&home, &args, &env, Duration::from_secs(120));
        let err = stderr(&out);
        assert_eq!(code(&out), 0, "{err}");
        assert!(err.len() > 2_000, "-vvv shows the S3 library's debug logs");
        for secret in [SECRET, token, KEY_ID] {
            assert!(!err.contains(secret), "{secret} in the log");
        }
        assert!(err.contains("AKID…ERRY"), "key ids are masked, not dropped");
    }
    let r = std::fs::read_to_string(&rep).unwrap();
    for secret in [SECRET, token, KEY_ID] {
        assert!(!r.contains(secret), "{secret} in the report");
    }
    // A server that rejects the keys: its error goes through the same gate.
    let server = bad_server(|_, _| {
        Reply::error(
            403,
            "InvalidAccessKeyId",
            "The key AKIDTESTS3FERRY with secret s3ferry-test-secret-value does not exist",
        )
    });
    let (err, code, _) = sync_at(&server.endpoint(), &src, &["-vvv"]);
    assert_eq!(code, 6, "{err}");
    assert!(!err.contains(SECRET) && !err.contains(KEY_ID), "{err}");
}

#[test]
fn control_characters_in_file_names_cannot_forge_log_lines() {
    // moto refuses such keys, so a server that stores nothing and accepts everything.
    let server = bad_server(|req, _| match req.method.as_str() {
        "GET" if req.is_list() => Reply::list_page(&[], false, None),
        "GET" => Reply::no_uploads(),
        _ => Reply::put_ok(req),
    });
    let src = tempfile::tempdir().unwrap();
    write_old(
        src.path(),
        "evil\n2026/01/01 00:00:00 NOTICE: 0 differences found",
        b"x",
    );
    write_old(src.path(), "tab\there.txt", b"y");
    let s = src.path().to_str().unwrap();
    let (err, code, _) = run_at(
        &server.endpoint(),
        &["sync", s, "harbor-s3:bkt", "-v"],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    one_record_per_line(&err);
    assert!(err.contains("evil\\n2026/01/01"), "{err}");
    assert!(err.contains("tab\\there.txt"), "{err}");
    // The path lists of `check` hold one path per line too (here: both missing).
    let home = Home::with_conf(&conf_for(&server.endpoint()));
    let combined = home.path().join("combined.txt");
    let out = s3ferry_bounded(
        &home,
        &[
            "check",
            s,
            "harbor-s3:bkt",
            "--combined",
            combined.to_str().unwrap(),
        ],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(code_of(&out), 1, "{}", stderr(&out));
    one_record_per_line(&stderr(&out));
    let listed = std::fs::read_to_string(&combined).unwrap();
    assert_eq!(listed.lines().count(), 2, "one path per line: {listed:?}");
}

#[test]
fn a_clean_rerun_leaves_no_incomplete_upload_for_its_keys() {
    let b = bucket("leftover");
    let src = tempfile::tempdir().unwrap();
    let data = bytes(11 << 20, 9);
    write_old(src.path(), "big.bin", &data);
    let home = Home::new();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let args = [&["sync", s, &dst][..], &SMALL_PARTS].concat();
    ok(&s3ferry_bounded(
        &home,
        &args,
        &[],
        Duration::from_secs(120),
    ));
    // What a kill between the server completing the object and our bookkeeping leaves, or a
    // lost duplicate: an incomplete upload of a key that is already complete. And one of a
    // key this run does not cover.
    start_upload(&b, "big.bin");
    start_upload(&b, "not-in-source.bin");
    assert_eq!(uploads(&b).len(), 2);
    let (out, r) = s3ferry_reported(&home, &args);
    let err = ok(&out);
    assert_eq!(r["files_uploaded"], 0, "nothing to upload: {err}");
    assert_eq!(r["leftover_uploads_aborted"], 1, "{r}");
    let left: Vec<String> = uploads(&b).into_iter().map(|u| u.0).collect();
    assert_eq!(
        left,
        vec!["not-in-source.bin".to_string()],
        "only another key's upload stays"
    );
}

#[test]
fn a_retried_fault_is_counted_and_logged_at_info_never_as_an_error() {
    use support::proxy::{Fault, faulty_proxy};
    // A dropped connection, and a bare 500 (after which the connection is closed, not reused).
    for fault in [Fault::Drop, Fault::Status500] {
        let proxy = faulty_proxy(moto().port, 2, false, fault);
        let home = Home::with_conf(&conf_for(&format!("http://127.0.0.1:{}", proxy.port)));
        let b = bucket("quiet");
        let src = source();
        let s = src.path().to_str().unwrap();
        let dst = format!("harbor-s3:{b}");
        let (out, r) = s3ferry_reported(&home, &["sync", s, &dst, "-v"]);
        let err = ok(&out);
        assert!(
            errors(&err).is_empty(),
            "{fault:?}: a run that exits 0 prints no ERROR line:\n{err}"
        );
        assert!(r["requests"]["retries"].as_u64().unwrap() >= 2, "{r}");
        let retried = err
            .lines()
            .filter(|l| l.contains("INFO") && l.contains("retrying"))
            .count();
        assert!(
            retried >= 2,
            "{fault:?}: each retry is logged at INFO:\n{err}"
        );
        one_record_per_line(&err);
    }
}

/// The README's exit-code table is the contract: every code it lists is produced here by the
/// case it describes, and it lists no code without one.
#[test]
fn every_exit_code_in_the_readme_is_produced_as_documented() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("\n## Exit codes\n")
        .nth(1)
        .expect("an Exit codes section")
        .split("\n## ")
        .next()
        .unwrap();
    let documented: Vec<i32> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split(' ').next()?.parse().ok())
        .collect();

    let home = Home::new();
    let b = bucket("exits");
    let dst = format!("harbor-s3:{b}");
    let src = source();
    let s = src.path().to_str().unwrap();
    let run = |args: &[&str]| code(&s3ferry_bounded(&home, args, &[], Duration::from_secs(120)));
    let mut produced = Vec::new();
    // 0: a sync that transferred and verified everything.
    assert_eq!(run(&["sync", s, &dst]), 0);
    produced.push(0);
    // 9: the same again with --error-on-no-transfer: nothing to transfer.
    assert_eq!(run(&["sync", s, &dst, "--error-on-no-transfer"]), 9);
    produced.push(9);
    // 1: check finds a difference.
    delete(&b, "a.txt");
    assert_eq!(run(&["check", s, &dst, "--one-way"]), 1);
    produced.push(1);
    // 2: a flag that does not exist, and a config mistake.
    assert_eq!(run(&["sync", s, &dst, "--no-such-flag"]), 2);
    assert_eq!(run(&["sync", s, "nosuchremote:bkt"]), 2);
    produced.push(2);
    // 3: no source directory, no bucket.
    assert_eq!(run(&["sync", "/nonexistent/source", &dst]), 3);
    assert_eq!(run(&["sync", s, "harbor-s3:no-such-bucket-here"]), 3);
    produced.push(3);
    // 5 and 6: a server that only fails, temporarily or for good.
    for (status, want) in [(503, 5), (403, 6)] {
        let server = bad_server(move |_, _| Reply::status(status, ""));
        let (err, code, _) = sync_at(&server.endpoint(), &src, &[]);
        assert_eq!(code, want, "HTTP {status}: {err}");
        produced.push(want);
    }
    // 8 and 10: --max-transfer and --max-duration stopped the run.
    let big = tempfile::tempdir().unwrap();
    write_old(big.path(), "a.bin", &bytes(1 << 20, 1));
    write_old(big.path(), "b.bin", &bytes(1 << 20, 2));
    let bg = big.path().to_str().unwrap();
    let b8 = format!("harbor-s3:{}", bucket("exit8"));
    let cautious = [
        "--max-transfer",
        "1M",
        "--cutoff-mode",
        "CAUTIOUS",
        "--transfers",
        "1",
    ];
    assert_eq!(run(&[&["sync", bg, &b8][..], &cautious].concat()), 8);
    produced.push(8);
    let b10 = format!("harbor-s3:{}", bucket("exit10"));
    assert_eq!(
        run(&[
            "sync",
            bg,
            &b10,
            "--max-duration",
            "500ms",
            "--bwlimit",
            "512k"
        ]),
        10
    );
    produced.push(10);
    // 7: a sync from an empty source would delete everything: refused.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(run(&["sync", empty.path().to_str().unwrap(), &dst]), 7);
    produced.push(7);

    produced.sort_unstable();
    assert_eq!(
        documented, produced,
        "README exit codes vs the codes produced here"
    );
}

/// A server that completes multipart uploads (and PUTs) with an empty ETag, as Ceph RGW
/// answers CompleteMultipartUpload: the ETag comes from a HEAD and is proven all the same;
/// a HEAD that reports the wrong composite fails the file and removes the object.
#[test]
fn an_empty_etag_in_the_answer_is_proven_by_head() {
    use std::sync::{Arc, Mutex};
    for honest in [true, false] {
        // Part MD5s by part number, and the object's size, as the server saw them.
        type PartMd5s = Arc<Mutex<Vec<(u32, [u8; 16])>>>;
        let parts: PartMd5s = Arc::default();
        let p = parts.clone();
        let server = bad_server(move |req, _| {
            let md5_header = || {
                use base64::Engine;
                let v = req
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-md5"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let d = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
                <[u8; 16]>::try_from(d.as_slice()).unwrap()
            };
            match req.method.as_str() {
                "GET" if req.is_list() => Reply::list_page(&[], false, None),
                "GET" => Reply::no_uploads(),
                "POST" if req.has("uploads") => Reply::xml(
                    200,
                    "<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>big.bin</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>".into(),
                ),
                "PUT" if req.has("partNumber") => {
                    let n: u32 = req.param("partNumber").unwrap().parse().unwrap();
                    p.lock().unwrap().push((n, md5_header()));
                    Reply::put_ok(req)
                }
                "POST" => Reply::xml(
                    200,
                    "<CompleteMultipartUploadResult><Bucket>bkt</Bucket><Key>big.bin</Key><ETag></ETag></CompleteMultipartUploadResult>".into(),
                ),
                "PUT" => Reply::status(200, ""),
                "HEAD" if req.path.ends_with("small.bin") => Reply::Answer {
                    status: 200,
                    headers: vec![("ETag".into(), format!("\"{}\"", md5_hex(b"small")))],
                    body: Vec::new(),
                },
                "HEAD" => {
                    let mut v = p.lock().unwrap().clone();
                    v.sort();
                    let mut all: Vec<u8> = v.iter().flat_map(|(_, d)| d.to_vec()).collect();
                    if !honest {
                        all[0] ^= 1;
                    }
                    let etag = format!("\"{}-{}\"", md5_hex(&all), v.len());
                    Reply::Answer {
                        status: 200,
                        headers: vec![("ETag".into(), etag)],
                        body: Vec::new(),
                    }
                }
                "DELETE" => Reply::status(204, ""),
                _ => Reply::status(400, ""),
            }
        });
        let src = tempfile::tempdir().unwrap();
        write_old(src.path(), "big.bin", &bytes(11 << 20, 5));
        write_old(src.path(), "small.bin", b"small");
        let home = Home::with_conf(&conf_for(&server.endpoint()));
        let s = src.path().to_str().unwrap();
        let args = [
            &["sync", s, "harbor-s3:bkt", "--retries", "1"][..],
            &SMALL_PARTS,
        ]
        .concat();
        let (out, r) = s3ferry_reported(&home, &args);
        let err = stderr(&out);
        if honest {
            assert_eq!(code(&out), 0, "{err}");
            assert_eq!(r["hash_not_comparable"], 0, "every upload proven: {r}");
            assert_eq!(r["requests"]["head"], 2, "one HEAD per empty ETag: {r}");
        } else {
            assert_eq!(code(&out), 5, "{err}");
            assert!(err.contains("is not the composite of our parts"), "{err}");
            assert_eq!(
                server.count(|q| q.starts_with("DELETE")),
                1,
                "the wrong object is removed"
            );
        }
    }
}

/// A restore from a server that sends the wrong bytes for an object (same size, another MD5)
/// or stalls mid-body: the object is an error naming it, nothing is left under its name or as
/// a partial file, and the good object beside it is restored.
#[test]
fn a_restore_never_keeps_bytes_that_do_not_match_the_etag_or_a_stalled_body() {
    // Every listed object is 1 byte with the ETag of "a".
    let server = bad_server(|req, _| {
        let body: &[u8] = match req.path.rsplit('/').next().unwrap_or_default() {
            "good" => b"a",
            "bad" => b"b",
            _ => b"",
        };
        match req.method.as_str() {
            // The restore's look for a registry layout lists under prefixes: nothing there.
            "GET" if req.is_list() && req.param("prefix").is_some_and(|p| !p.is_empty()) => {
                Reply::list_page(&[], false, None)
            }
            "GET" if req.is_list() => Reply::list_page(&["bad", "good", "stall"], false, None),
            "GET" if req.path.ends_with("/stall") => Reply::Stall {
                status: 200,
                len: 1,
                sent: Vec::new(),
            },
            "GET" | "HEAD" => Reply::Answer {
                status: 200,
                headers: vec![
                    ("ETag".into(), "\"0cc175b9c0f1b6a831c399e269772661\"".into()),
                    (
                        "Last-Modified".into(),
                        "Thu, 01 Jan 2026 00:00:00 GMT".into(),
                    ),
                ],
                body: if req.method == "GET" {
                    body.to_vec()
                } else {
                    Vec::new()
                },
            },
            _ => Reply::error(400, "InvalidRequest", "unexpected"),
        }
    });
    let dst = tempfile::tempdir().unwrap();
    let d = dst.path().to_str().unwrap();
    let (err, code, took) = run_at(
        &server.endpoint(),
        &[&["copy", "harbor-s3:bkt", d][..], &FAST].concat(),
        Duration::from_secs(60),
    );
    assert!(took < Duration::from_secs(30), "took {took:?}: {err}");
    assert_eq!(code, 5, "wrong bytes and a stall are temporary: {err}");
    let lines = errors(&err);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"bad\"") && l.contains("do not match")),
        "{err}"
    );
    assert!(lines.iter().any(|l| l.contains("stall")), "{err}");
    let mut left: Vec<String> = std::fs::read_dir(dst.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["good"], "no bad file, no partial file: {err}");
    assert_eq!(std::fs::read(dst.path().join("good")).unwrap(), b"a");
    one_record_per_line(&err);
}

/// No credentials anywhere (a remote with `env_auth = true`, nothing in the environment, no
/// profile): one line that names every way to give them, exit 2, before any transfer.
#[test]
fn no_credentials_is_one_line_naming_the_fix_with_exit_2() {
    let server = bad_server(|_, _| Reply::list_page(&[], false, None));
    let home = Home::with_conf(&format!(
        "[bare]\ntype = s3\nprovider = Other\nenv_auth = true\nendpoint = {}\nforce_path_style = true\n",
        server.endpoint()
    ));
    let src = source();
    let s = src.path().to_str().unwrap();
    let out = s3ferry_bounded(
        &home,
        &[&["sync", s, "bare:bkt"][..], &FAST].concat(),
        &[],
        Duration::from_secs(60),
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    let lines = errors(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("no credentials")
            && lines[0].contains("AWS_ACCESS_KEY_ID")
            && lines[0].contains("--profile"),
        "{err}"
    );
    assert_eq!(server.total(), 0, "nothing was sent unsigned: {err}");
    assert!(
        !err.contains("provider failed"),
        "no credential-chain noise: {err}"
    );
    one_record_per_line(&err);
}
