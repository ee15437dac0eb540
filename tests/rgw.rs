//! The tests that matter for server fidelity, on Ceph RGW, a production S3 server with quirks
//! of its own: it checks Content-MD5 (so corruption on the way is refused by the server, not
//! only by us), answers CompleteMultipartUpload with an empty ETag, and lists and resumes
//! multipart uploads. One single-node cluster serves this whole test binary.

mod support;

use support::*;

const MIB: usize = 1 << 20;

fn rgw_endpoint() -> String {
    format!("http://127.0.0.1:{}", rgw().port)
}

fn rgw_home() -> Home {
    Home::with_conf(&conf_for(&rgw_endpoint()).replace("Minio", "Ceph"))
}

/// A registry-shaped tree: links, small blobs and one blob big enough for multipart.
fn registry_tree(root: &std::path::Path) -> Vec<u8> {
    let v2 = "docker/registry/v2";
    let big = bytes(12 * MIB + 3, 77);
    let digest = |d: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(d))
    };
    let mut blobs = vec![big.clone()];
    blobs.extend((0..5).map(|i| bytes(1000 + i, i as u64)));
    for (i, b) in blobs.iter().enumerate() {
        let d = digest(b);
        write_old(root, &format!("{v2}/blobs/sha256/{}/{d}/data", &d[..2]), b);
        write_old(
            root,
            &format!("{v2}/repositories/lib/app/_layers/sha256/{d}/link"),
            format!("sha256:{d}").as_bytes(),
        );
        if i == 0 {
            write_old(
                root,
                &format!("{v2}/repositories/lib/app/_manifests/tags/v1/current/link"),
                format!("sha256:{d}").as_bytes(),
            );
        }
    }
    big
}

#[test]
fn sync_proves_every_upload_check_passes_and_a_rerun_sends_nothing() {
    let c = client_at(&rgw_endpoint());
    let b = bucket_at(&c, "rgw");
    let src = tempfile::tempdir().unwrap();
    registry_tree(src.path());
    let home = rgw_home();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let args = [&["sync", s, &dst][..], &SMALL_PARTS].concat();
    let (out, r) = s3ferry_reported(&home, &args);
    ok(&out);
    assert_eq!(r["files_uploaded"], 13, "{r}");
    assert_eq!(
        r["hash_not_comparable"], 0,
        "every upload proven, the multipart one by HEAD: {r}"
    );
    assert_eq!(r["requests"]["complete"], 1, "{r}");
    let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
    assert!(err.contains("0 differences found"), "{err}");
    assert!(err.contains("13 matching files"), "{err}");
    let (out, r) = s3ferry_reported(&home, &args);
    ok(&out);
    assert_eq!(r["files_uploaded"], 0, "{r}");
    assert_eq!(r["requests"]["put"], 0, "{r}");
    // Restored from RGW into a new directory: every object proven (the multipart blob by its
    // composite, its part layout from RGW's HEAD with partNumber), byte-identical, mtimes kept.
    let back = tempfile::tempdir().unwrap();
    let into = back.path().join("restored");
    let (out, r) = s3ferry_reported(&home, &["copy", &dst, into.to_str().unwrap()]);
    ok(&out);
    assert_eq!(r["files_restored"], 13, "{r}");
    assert_eq!(r["hash_not_comparable"], 0, "{r}");
    let (out, _) = s3ferry_reported(&home, &["check", into.to_str().unwrap(), &dst]);
    let err = ok(&out);
    assert!(err.contains("0 differences found"), "{err}");
    // The restored tree is what was uploaded: the upload of it changes nothing.
    let (out, r) = s3ferry_reported(
        &home,
        &[&["sync", into.to_str().unwrap(), &dst][..], &SMALL_PARTS].concat(),
    );
    ok(&out);
    assert_eq!(r["files_uploaded"], 0, "{r}");
    // Bucket to bucket on RGW: copied by the server (the multipart blob part by part with
    // UploadPartCopy, which RGW refuses without a Content-Length), proven by equal ETags.
    let b2 = bucket_at(&c, "rgw-copy");
    let (out, r) = s3ferry_reported(&home, &["sync", &dst, &format!("harbor-s3:{b2}")]);
    ok(&out);
    assert_eq!(r["server_side_copies"], 13, "{r}");
    // RGW's CopyObject keeps a multipart object's ETag (and shares its data): one request per
    // object, no part copies.
    assert_eq!(r["requests"]["copy"], 13, "{r}");
    assert_eq!(r["requests"]["create_multipart"], 0, "{r}");
    assert_eq!(r["requests"]["get"], 0, "{r}");
    assert_eq!(r["requests_source"]["get"], 0, "{r}");
    let (out, _) = s3ferry_reported(&home, &["check", &dst, &format!("harbor-s3:{b2}")]);
    assert!(ok(&out).contains(" 0 differences found"));
    // A tampered object is found by check.
    let key = list_at(&c, &b)
        .into_iter()
        .find(|o| o.key.ends_with("/link"))
        .unwrap()
        .key;
    rt().block_on(async {
        c.put_object()
            .bucket(&b)
            .key(&key)
            .body(
                b"sha256:0000000000000000000000000000000000000000000000000000000000000000"
                    .to_vec()
                    .into(),
            )
            .send()
            .await
            .unwrap()
    });
    let out = s3ferry(&home, &["check", s, &dst, "--one-way"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("md5 differ"), "{}", stderr(&out));
}

#[test]
fn kill_9_during_multipart_then_the_rerun_resumes_on_rgw() {
    let c = client_at(&rgw_endpoint());
    let b = bucket_at(&c, "rgwresume");
    let src = tempfile::tempdir().unwrap();
    let data = bytes(60 * MIB + 11, 5);
    write_old(src.path(), "blob/data", &data);
    let home = rgw_home();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let slow = [
        "--transfers",
        "1",
        "--s3-upload-concurrency",
        "1",
        "--bwlimit",
        "8M",
    ];
    let args = [&["sync", s, &dst][..], &SMALL_PARTS, &slow].concat();
    let mut child = command(&home, &args, &[])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let parts_before = wait_for_parts(&mut child, &c, &b, 2);
    child.kill().unwrap();
    child.wait().unwrap();
    let listed = uploads_at(&c, &b)[0].2;
    assert!(listed >= parts_before && listed < 13, "{listed} parts");
    let (out, r) = s3ferry_reported(&home, &[&["sync", s, &dst][..], &SMALL_PARTS].concat());
    ok(&out);
    assert_eq!(r["files_resumed"], 1, "{r}");
    assert_eq!(r["requests"]["create_multipart"], 0, "resumed: {r}");
    // A part sent whole before the kill may be stored after the listing above: the rerun
    // reuses every part the server holds when it looks.
    let reused = r["bytes_reused"].as_u64().unwrap();
    assert_eq!(reused % (5 * MIB) as u64, 0, "whole parts reused: {r}");
    let reused_parts = reused / (5 * MIB) as u64;
    assert!(reused_parts >= listed as u64 && reused_parts < 13, "{r}");
    assert_eq!(
        r["requests"]["upload_part"].as_u64().unwrap(),
        13 - reused_parts,
        "only the missing parts: {r}"
    );
    assert_eq!(r["hash_not_comparable"], 0, "{r}");
    assert!(uploads_at(&c, &b).is_empty(), "nothing left behind");
    assert_eq!(get_at(&c, &b, "blob/data"), data);
}

#[test]
fn rgw_refuses_corrupted_bodies_by_content_md5_and_the_resend_succeeds() {
    // The proxy flips a byte in the first two PUT bodies; RGW answers BadDigest.
    let proxy = support::proxy::corrupting_proxy(rgw().port, 2, false);
    let c = client_at(&rgw_endpoint());
    let b = bucket_at(&c, "rgwbad");
    let src = tempfile::tempdir().unwrap();
    let data = bytes(3000, 8);
    write_old(src.path(), "f.bin", &data);
    let home = Home::with_conf(
        &conf_for(&format!("http://127.0.0.1:{}", proxy.port)).replace("Minio", "Ceph"),
    );
    let s = src.path().to_str().unwrap();
    let args = [
        "sync",
        s,
        &format!("harbor-s3:{b}"),
        "--transfers",
        "1",
        "-v",
    ];
    let (out, r) = s3ferry_reported(&home, &args);
    let err = ok(&out);
    assert!(
        err.contains("BadDigest"),
        "the server's refusal is logged: {err}"
    );
    assert_eq!(r["retries"], 2, "{r}");
    assert_eq!(get_at(&c, &b, "f.bin"), data);
}

#[test]
fn cleanup_aborts_old_uploads_on_rgw() {
    let c = client_at(&rgw_endpoint());
    let b = bucket_at(&c, "rgwclean");
    rt().block_on(async {
        c.create_multipart_upload()
            .bucket(&b)
            .key("p/x")
            .send()
            .await
            .unwrap()
    });
    assert_eq!(uploads_at(&c, &b).len(), 1);
    let home = rgw_home();
    ok(&s3ferry(
        &home,
        &["cleanup", &format!("harbor-s3:{b}/p"), "--older-than", "0s"],
    ));
    assert!(uploads_at(&c, &b).is_empty());
}

#[test]
fn checksums_change_nothing_on_a_server_that_ignores_them() {
    // Ceph RGW 16.2 has no S3 checksums: it ignores the headers, keeps MD5 ETags, and every
    // upload is proven by them, with the same requests as without checksums.
    let c = client_at(&rgw_endpoint());
    let src = tempfile::tempdir().unwrap();
    registry_tree(src.path());
    let home = rgw_home();
    let s = src.path().to_str().unwrap();
    let mut requests = Vec::new();
    for mode in ["off", "auto", "crc64nvme", "sha256"] {
        let b = bucket_at(&c, "rgwsum");
        let dst = format!("harbor-s3:{b}");
        let args = [&["sync", s, &dst, "--s3-checksum", mode][..], &SMALL_PARTS].concat();
        let (out, r) = s3ferry_reported(&home, &args);
        ok(&out);
        assert_eq!(r["proven_by_etag"], 13, "{mode}: {r}");
        assert_eq!(r["proven_by_checksum"], 0, "{mode}: {r}");
        assert_eq!(r["hash_not_comparable"], 0, "{mode}: {r}");
        requests.push((mode, r["requests"].clone()));
        let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
        assert!(err.contains("0 differences found"), "{mode}: {err}");
    }
    for (mode, r) in &requests[1..] {
        assert_eq!(r, &requests[0].1, "{mode} against off");
    }
}
