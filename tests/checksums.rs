//! S3 checksums beside Content-MD5: sent as headers (never trailers), stored as computed on
//! single and multipart uploads with each algorithm, the proof where ETags are not MD5s (a
//! proxy in front of s3s-fs answers with opaque ETags, as SSE-KMS buckets do), `check` proving
//! such a bucket with HEADs and no downloads, registry blobs carrying their digest, and a
//! server that refuses a checksum or stores another one.
//!
//! What the test servers do with checksums (asserted in `what_the_servers_do_with_checksums`):
//! s3s-fs verifies a PutObject's checksum and stores it (multipart uploads carry none); moto
//! stores single and multipart checksums without verifying them; Ceph RGW 16.2 ignores them
//! (`tests/rgw.rs`).

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use support::badserver::{Reply, bad_server};
use support::proxy::{opaque_etag_proxy, opaque_multipart_etag_proxy, recording_proxy};
use support::*;

const MIB: usize = 1 << 20;

fn crc32c(d: &[u8]) -> Vec<u8> {
    crc::Crc::<u32>::new(&crc::CRC_32_ISCSI)
        .checksum(d)
        .to_be_bytes()
        .to_vec()
}

fn crc64nvme(d: &[u8]) -> Vec<u8> {
    crc::Crc::<u64>::new(&crc::CRC_64_NVME)
        .checksum(d)
        .to_be_bytes()
        .to_vec()
}

fn sha256(d: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(d).to_vec()
}

/// The value S3 stores for `data` uploaded in parts of `part` bytes (`None`: one PUT), by an
/// implementation independent of ours: a full-object CRC, or SHA-256's composite.
fn expected(alg: &str, data: &[u8], part: Option<usize>) -> String {
    let f: fn(&[u8]) -> Vec<u8> = match alg {
        "crc32c" => crc32c,
        "crc64nvme" => crc64nvme,
        _ => sha256,
    };
    match part {
        Some(p) if alg == "sha256" => {
            let cat: Vec<u8> = data.chunks(p).flat_map(f).collect();
            STANDARD.encode(f(&cat))
        }
        _ => STANDARD.encode(f(data)),
    }
}

/// The checksum a server stored for an object, as a HEAD in checksum mode answers it (without
/// a composite's `-N`).
fn stored(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<(String, String)> {
    let h = rt().block_on(async {
        c.head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap()
    });
    [
        ("crc32c", h.checksum_crc32_c()),
        ("crc64nvme", h.checksum_crc64_nvme()),
        ("sha256", h.checksum_sha256()),
    ]
    .into_iter()
    .find_map(|(a, v)| {
        v.map(|v| {
            let v = v.split_once('-').map_or(v, |(b, _)| b);
            (a.to_string(), v.to_string())
        })
    })
}

/// No request asked for an aws-chunked body or a trailing checksum.
#[track_caller]
fn no_trailers(heads: &[String]) {
    for h in heads {
        let l = h.to_ascii_lowercase();
        assert!(
            !l.contains("x-amz-trailer") && !l.contains("aws-chunked") && !l.contains("streaming-"),
            "a request with a trailer: {h}"
        );
    }
}

#[test]
fn each_algorithm_is_stored_as_computed_on_single_and_multipart_uploads() {
    let c = client();
    let src = tempfile::tempdir().unwrap();
    let small = bytes(100_000, 1);
    let big = bytes(12 * MIB + 3, 2);
    write_old(src.path(), "small", &small);
    write_old(src.path(), "big", &big);
    let s = src.path().to_str().unwrap();
    let home = Home::with_conf(&seed_conf());
    for alg in ["crc32c", "crc64nvme", "sha256"] {
        let b = bucket(alg);
        let dst = format!("harbor-s3:{b}");
        let mut args = vec!["sync", s, &dst, "--s3-checksum", alg];
        args.extend(SMALL_PARTS);
        let (out, r) = s3ferry_reported(&home, &args);
        ok(&out);
        // moto's ETags are MD5s: they prove the uploads, and the answers' checksums agree.
        assert_eq!(r["proven_by_etag"], 2, "{alg}: {r}");
        assert_eq!(r["proven_by_checksum"], 0, "{alg}: {r}");
        assert_eq!(
            stored(&c, &b, "small"),
            Some((alg.to_string(), expected(alg, &small, None))),
            "{alg}"
        );
        assert_eq!(
            stored(&c, &b, "big"),
            Some((alg.to_string(), expected(alg, &big, Some(5 * MIB)))),
            "{alg}: full-object for the CRCs, composite for SHA-256"
        );
        let out = s3ferry(&home, &["check", s, &dst, "--one-way"]);
        assert!(ok(&out).contains("0 differences found"));
    }
}

#[test]
fn where_etags_are_not_md5s_checksums_prove_uploads_and_check_downloads_nothing() {
    let proxy = opaque_etag_proxy(s3s_fs().port);
    let ep = format!("http://127.0.0.1:{}", proxy.port);
    let home = Home::with_conf(&conf_for(&ep));
    let direct = client_at(&format!("http://127.0.0.1:{}", s3s_fs().port));
    let b = bucket_at(&direct, "opaque");
    let src = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("d/f{i}"), bytes(1000 + i * 70_000, 10 + i as u64)))
        .collect();
    for (rel, data) in &files {
        write_old(src.path(), rel, data);
    }
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");

    // One at a time, so that exactly one upload learns that ETags prove nothing here.
    let (out, r) = s3ferry_reported(&home, &["sync", s, &dst, "--transfers", "1", "-v"]);
    let err = ok(&out);
    assert!(err.contains("ETags are not MD5s"), "{err}");
    assert_eq!(r["proven_by_checksum"], 6, "{r}");
    assert_eq!(r["hash_not_comparable"], 0, "{r}");
    assert_eq!(r["proven_by_etag"], 0, "{r}");
    assert_eq!(
        r["requests"]["put"], 7,
        "the first file is sent again, with a checksum: {r}"
    );
    for (rel, data) in &files {
        assert_eq!(
            stored(&direct, &b, rel),
            Some(("crc64nvme".into(), expected("crc64nvme", data, None))),
            "{rel}"
        );
    }
    let heads = proxy.heads.lock().unwrap().clone();
    no_trailers(&heads);
    let puts: Vec<&String> = heads.iter().filter(|h| h.starts_with("PUT ")).collect();
    assert_eq!(puts.len(), 7);
    assert!(
        puts[1..]
            .iter()
            .all(|h| h.to_ascii_lowercase().contains("x-amz-checksum-crc64nvme:")),
        "every PUT after the first carries the checksum"
    );

    // check proves every object by its stored checksum: HEADs, no GETs.
    let (out, r) = s3ferry_reported(&home, &["check", s, &dst, "--one-way"]);
    let err = ok(&out);
    assert!(err.contains("0 differences found"), "{err}");
    assert_eq!(r["proven_by_checksum"], 6, "{r}");
    assert_eq!(r["requests"]["get"], 0, "{r}");

    // A restore proves every file by the stored checksum as well.
    let back = tempfile::tempdir().unwrap();
    let d = back.path().to_str().unwrap();
    let (out, r) = s3ferry_reported(&home, &["copy", &dst, d]);
    ok(&out);
    assert_eq!(r["files_restored"], 6, "{r}");
    assert_eq!(r["proven_by_checksum"], 6, "{r}");
    assert_eq!(r["hash_not_comparable"], 0, "{r}");
    for (rel, data) in &files {
        assert_eq!(
            &std::fs::read(back.path().join(rel)).unwrap(),
            data,
            "{rel}"
        );
    }

    // An object replaced by other bytes of the same size (stored with their own checksum) is
    // caught, still without a download.
    let (rel, data) = &files[3];
    let mut other = data.clone();
    other[7] ^= 1;
    rt().block_on(async {
        direct
            .put_object()
            .bucket(&b)
            .key(rel)
            .body(other.into())
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc64Nvme)
            .send()
            .await
            .unwrap()
    });
    let (out, r) = s3ferry_reported(&home, &["check", s, &dst, "--one-way"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 differences found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(r["hash_differ"], 1, "{r}");
    assert_eq!(r["requests"]["get"], 0, "{r}");
    no_trailers(&proxy.heads.lock().unwrap());
}

#[test]
fn multipart_uploads_are_proven_by_their_full_object_checksum_where_etags_are_opaque() {
    // moto keeps multipart checksums; the proxy hides its composite ETags.
    let proxy = opaque_multipart_etag_proxy(moto().port);
    let ep = format!("http://127.0.0.1:{}", proxy.port);
    let home = Home::with_conf(&conf_for(&ep));
    let b = bucket("mpopaque");
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "big", &bytes(11 * MIB, 5));
    write_old(src.path(), "small", &bytes(3000, 6));
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let mut args = vec!["sync", s, &dst, "--s3-checksum", "crc64nvme"];
    args.extend(SMALL_PARTS);
    let (out, r) = s3ferry_reported(&home, &args);
    ok(&out);
    assert_eq!(r["proven_by_checksum"], 1, "{r}");
    assert_eq!(r["proven_by_etag"], 1, "{r}");
    assert_eq!(r["hash_not_comparable"], 0, "{r}");
    let (out, r) = s3ferry_reported(&home, &["check", s, &dst, "--one-way"]);
    assert!(ok(&out).contains("0 differences found"));
    assert_eq!(r["proven_by_checksum"], 1, "{r}");
    assert_eq!(r["proven_by_etag"], 1, "{r}");
    assert_eq!(r["requests"]["get"], 0, "{r}");
    no_trailers(&proxy.heads.lock().unwrap());
}

/// A bucket on the misbehaving server that takes one multipart upload with opaque ETags and,
/// as AWS does for every new object, stores a CRC64NVME of it, which a HEAD in checksum mode
/// reports as `stored` (moto computes one but does not report it).
fn default_checksum_server(size: usize, stored: String) -> support::badserver::BadServer {
    bad_server(move |req, _| {
        let xml = |s: &str| Reply::xml(200, s.to_string());
        match req.method.as_str() {
            "GET" if req.is_list() => Reply::list_page(&[], false, None),
            "GET" => Reply::no_uploads(),
            "POST" if req.has("uploads") => xml(
                "<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>big</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>",
            ),
            "PUT" if req.has("partNumber") => Reply::Answer {
                status: 200,
                headers: vec![("ETag".into(), "\"opaque-part\"".into())],
                body: Vec::new(),
            },
            "POST" => xml(
                "<CompleteMultipartUploadResult><Bucket>bkt</Bucket><Key>big</Key><ETag>\"opaque-object\"</ETag></CompleteMultipartUploadResult>",
            ),
            // A HEAD answers with no body: the body here only sets Content-Length.
            "HEAD" => Reply::Answer {
                status: 200,
                headers: vec![
                    ("ETag".into(), "\"opaque-object\"".into()),
                    ("x-amz-checksum-crc64nvme".into(), stored.clone()),
                    ("x-amz-checksum-type".into(), "FULL_OBJECT".into()),
                ],
                body: vec![0; size],
            },
            "DELETE" => Reply::status(204, ""),
            _ => Reply::status(200, ""),
        }
    })
}

#[test]
fn a_multipart_upload_sent_before_auto_learnt_is_proven_by_the_servers_own_checksum() {
    // With `auto`, the first multipart upload goes without a checksum (nothing has shown yet
    // that ETags prove nothing here); the CRC64NVME the server stored proves it, from the
    // file read once more, and a wrong one fails it.
    let data = bytes(11 * MIB, 5);
    let right = STANDARD.encode(crc64nvme(&data));
    for (stored, proven) in [(right, true), (STANDARD.encode([0u8; 8]), false)] {
        let server = default_checksum_server(data.len(), stored);
        let home = Home::with_conf(&conf_for(&server.endpoint()));
        let src = tempfile::tempdir().unwrap();
        write_old(src.path(), "big", &data);
        let mut args = vec!["sync", src.path().to_str().unwrap(), "harbor-s3:bkt"];
        args.extend(SMALL_PARTS);
        let (out, r) = s3ferry_reported(&home, &args);
        let err = stderr(&out);
        if proven {
            assert_eq!(code(&out), 0, "{err}");
            assert_eq!(r["proven_by_checksum"], 1, "{r}");
            assert_eq!(r["hash_not_comparable"], 0, "{r}");
        } else {
            assert_eq!(code(&out), 5, "{err}");
            assert!(err.contains("the server stored checksum"), "{err}");
            assert_eq!(
                server.count(|r| r.starts_with("DELETE ")),
                1,
                "removed: {err}"
            );
        }
        assert_eq!(server.count(|r| r.starts_with("HEAD ")), 1, "{err}");
    }
}

#[test]
fn registry_blobs_carry_their_digest_for_the_server_to_check() {
    let ep = format!("http://127.0.0.1:{}", s3s_fs().port);
    let home = Home::with_conf(&conf_for(&ep));
    let direct = client_at(&ep);
    let b = bucket_at(&direct, "blobs");
    let src = tempfile::tempdir().unwrap();
    let v2 = "docker/registry/v2";
    let data = bytes(40_000, 3);
    let d = hex::encode(sha256(&data));
    let blob = format!("{v2}/blobs/sha256/{}/{d}/data", &d[..2]);
    write_old(src.path(), &blob, &data);
    let link = format!("{v2}/repositories/lib/app/_layers/sha256/{d}/link");
    write_old(src.path(), &link, format!("sha256:{d}").as_bytes());
    let s = src.path().to_str().unwrap();
    ok(&s3ferry(&home, &["sync", s, &format!("harbor-s3:{b}")]));
    // s3s-fs verified the body against the digest before storing it (see the next test).
    assert_eq!(
        stored(&direct, &b, &blob),
        Some(("sha256".into(), STANDARD.encode(hex::decode(&d).unwrap())))
    );
    assert_eq!(stored(&direct, &b, &link), None, "links carry no checksum");
    // `--s3-checksum off` sends none.
    let b2 = bucket_at(&direct, "blobsoff");
    let dst = format!("harbor-s3:{b2}");
    ok(&s3ferry(&home, &["sync", s, &dst, "--s3-checksum", "off"]));
    assert_eq!(stored(&direct, &b2, &blob), None);
}

#[test]
fn what_the_servers_do_with_checksums() {
    // A PUT whose SHA-256 header does not match its body (Content-MD5 right).
    let data = b"the bytes".to_vec();
    let wrong = STANDARD.encode(sha256(b"other bytes"));
    let md5 = STANDARD.encode(hex::decode(md5_hex(&data)).unwrap());
    let try_put = |c: &aws_sdk_s3::Client, b: &str| {
        rt().block_on(async {
            c.put_object()
                .bucket(b)
                .key("k")
                .body(data.clone().into())
                .content_md5(&md5)
                .checksum_sha256(&wrong)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    e.into_service_error()
                        .meta()
                        .code()
                        .unwrap_or_default()
                        .to_string()
                })
        })
    };
    let s3s = client_at(&format!("http://127.0.0.1:{}", s3s_fs().port));
    let b = bucket_at(&s3s, "refuses");
    let e = try_put(&s3s, &b).expect_err("s3s-fs verifies the checksum");
    assert_eq!(e, "BadDigest");
    let moto = client();
    let b = bucket("accepts");
    try_put(&moto, &b).expect("moto stores a checksum without verifying it");
}

/// A bucket on the misbehaving server whose ETags are opaque (SSE-KMS) and which answers every
/// PUT with the given checksum header, or refuses it.
fn kms_server(answer: Option<&'static str>) -> support::badserver::BadServer {
    bad_server(move |req, _| match req.method.as_str() {
        "GET" if req.is_list() => Reply::list_page(&[], false, None),
        "GET" => Reply::no_uploads(),
        "PUT" => match answer {
            Some(sum) => Reply::Answer {
                status: 200,
                headers: vec![
                    ("ETag".into(), "\"kms-opaque-etag\"".into()),
                    ("x-amz-server-side-encryption".into(), "aws:kms".into()),
                    ("x-amz-checksum-crc64nvme".into(), sum.into()),
                ],
                body: Vec::new(),
            },
            None => Reply::error(
                400,
                "BadDigest",
                "The CRC64NVME you specified did not match the calculated checksum.",
            ),
        },
        "DELETE" => Reply::status(204, ""),
        _ => Reply::status(200, ""),
    })
}

#[test]
fn a_server_that_stores_another_checksum_or_refuses_ours_fails_the_file() {
    for (answer, what) in [
        (Some("AAAAAAAAAAA="), "stored checksum"),
        (None, "BadDigest"),
    ] {
        let server = kms_server(answer);
        let home = Home::with_conf(&conf_for(&server.endpoint()));
        let src = tempfile::tempdir().unwrap();
        write_old(src.path(), "a.txt", b"alpha");
        let s = src.path().to_str().unwrap();
        let out = s3ferry_bounded(
            &home,
            &[
                "sync",
                s,
                "harbor-s3:bkt",
                "--s3-checksum",
                "crc64nvme",
                "--retries",
                "2",
            ],
            &[],
            Duration::from_secs(60),
        );
        let err = stderr(&out);
        assert_eq!(code(&out), 5, "an integrity failure, retried once: {err}");
        assert!(err.contains(what), "{err}");
        assert_eq!(
            server.count(|r| r.starts_with("PUT ")),
            2,
            "sent, then sent once again: {err}"
        );
    }
}

#[test]
fn a_restore_refuses_bytes_that_do_not_match_the_stored_checksum() {
    // Bytes damaged in the bucket after they were stored (the server's file changed behind
    // its back): the proxy hides the ETags, so the stored checksum is the only proof.
    let direct = client_at(&format!("http://127.0.0.1:{}", s3s_fs().port));
    let b = bucket_at(&direct, "rot");
    let data = bytes(50_000, 8);
    rt().block_on(async {
        direct
            .put_object()
            .bucket(&b)
            .key("k")
            .body(data.clone().into())
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc64Nvme)
            .send()
            .await
            .unwrap()
    });
    let stored_file = s3s_fs_root().join(&b).join("k");
    let mut rotten = std::fs::read(&stored_file).unwrap();
    assert_eq!(rotten, data);
    rotten[100] ^= 4;
    std::fs::write(&stored_file, &rotten).unwrap();
    let proxy = opaque_etag_proxy(s3s_fs().port);
    let home = Home::with_conf(&conf_for(&format!("http://127.0.0.1:{}", proxy.port)));
    let back = tempfile::tempdir().unwrap();
    let d = back.path().to_str().unwrap();
    let out = s3ferry(&home, &["copy", &format!("harbor-s3:{b}"), d]);
    let err = stderr(&out);
    assert_eq!(code(&out), 5, "{err}");
    assert!(err.contains("checksum"), "{err}");
    assert!(
        !back.path().join("k").exists(),
        "nothing written under its name"
    );
}

#[test]
fn bucket_copies_carry_the_checksum() {
    let s3s_ep = format!("http://127.0.0.1:{}", s3s_fs().port);
    let conf = format!(
        "{}{}",
        seed_conf(),
        conf_for(&s3s_ep).replace("[harbor-s3]", "[other]")
    );
    let home = Home::with_conf(&conf);
    let s3s = client_at(&s3s_ep);
    let moto = client();
    // The source on s3s-fs, without checksums.
    let src = bucket_at(&s3s, "cpsrc");
    let small = bytes(70_000, 21);
    let big = bytes(11 * MIB, 22);
    for (k, d) in [("small", &small), ("big", &big)] {
        rt().block_on(async {
            s3s.put_object()
                .bucket(&src)
                .key(k)
                .body(d.clone().into())
                .send()
                .await
                .unwrap()
        });
    }
    // Streamed to moto (another endpoint): computed from the bytes as they pass.
    let dst = bucket("cpdst");
    let mut args = vec![
        "copy".to_string(),
        format!("other:{src}"),
        format!("harbor-s3:{dst}"),
        "--s3-checksum".into(),
        "crc64nvme".into(),
    ];
    args.extend(SMALL_PARTS.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&s3ferry(&home, &args));
    for (k, d) in [("small", &small), ("big", &big)] {
        assert_eq!(
            stored(&moto, &dst, k),
            Some(("crc64nvme".into(), expected("crc64nvme", d, None))),
            "{k}"
        );
    }
    // Server-side, within moto: the server computes it for the copy.
    let dst2 = bucket("cpdst2");
    let (from, to) = (format!("harbor-s3:{dst}"), format!("harbor-s3:{dst2}"));
    ok(&s3ferry(
        &home,
        &["copy", &from, &to, "--s3-checksum", "sha256"],
    ));
    assert_eq!(
        stored(&moto, &dst2, "small"),
        Some(("sha256".into(), expected("sha256", &small, None)))
    );
}

#[test]
fn sse_c_keys_go_with_every_object_request_and_never_into_the_log() {
    // moto takes SSE-C (and keeps MD5 ETags, which AWS does not): with SSE-C configured,
    // uploads are proven by their checksums.
    let proxy = recording_proxy(moto().port);
    let home = Home::with_conf(&conf_for(&format!("http://127.0.0.1:{}", proxy.port)));
    let b = bucket("ssec");
    let key = "k3y-0f-32-bytes-for-aes256-xxxxx";
    let key_b64 = STANDARD.encode(key);
    let src = tempfile::tempdir().unwrap();
    let files = [("small", bytes(9000, 31)), ("big", bytes(11 * MIB, 32))];
    for (rel, d) in &files {
        write_old(src.path(), rel, d);
    }
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let with_key = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        v.extend(["--s3-sse-customer-key".into(), key.into(), "-vv".into()]);
        v
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (out, r) = s3ferry_reported(&home, &args);
        let text = format!("{}{r}", stderr(&out));
        assert!(
            !text.contains(key) && !text.contains(&key_b64),
            "the key was written out"
        );
        (out, r)
    };
    let mut args = with_key(&["sync", s, &dst]);
    args.extend(SMALL_PARTS.iter().map(|a| a.to_string()));
    let (out, r) = run(args);
    ok(&out);
    assert_eq!(r["proven_by_checksum"], 2, "{r}");
    assert_eq!(r["proven_by_etag"], 0, "{r}");
    let (out, r) = run(with_key(&["check", s, &dst, "--one-way"]));
    assert!(ok(&out).contains("0 differences found"));
    assert_eq!(r["requests"]["get"], 0, "{r}");
    let back = tempfile::tempdir().unwrap();
    let (out, _) = run(with_key(&["copy", &dst, back.path().to_str().unwrap()]));
    ok(&out);
    for (rel, d) in &files {
        assert_eq!(&std::fs::read(back.path().join(rel)).unwrap(), d, "{rel}");
    }
    // (moto serves SSE-C objects without the key too, so what a server does without it is not
    // tested here.)

    let heads = proxy.heads.lock().unwrap().clone();
    no_trailers(&heads);
    let object_requests: Vec<&String> = heads
        .iter()
        .filter(|h| {
            let line = h.lines().next().unwrap_or_default();
            let path = line.split(' ').nth(1).unwrap_or_default();
            let path = path.split('?').next().unwrap_or_default();
            ["PUT ", "GET ", "HEAD ", "POST "]
                .iter()
                .any(|m| line.starts_with(m))
                && path
                    .trim_start_matches('/')
                    .split_once('/')
                    .is_some_and(|(_, key)| !key.is_empty())
        })
        .collect();
    assert!(object_requests.len() >= 8, "{}", object_requests.len());
    let keyed = object_requests
        .iter()
        .filter(|h| {
            h.to_ascii_lowercase()
                .contains("x-amz-server-side-encryption-customer-key:")
        })
        .count();
    assert_eq!(
        keyed,
        object_requests.len(),
        "every request for an object's bytes or metadata carries the key"
    );
}
