//! End-to-end tests of `check` against a real S3 server (moto) on 127.0.0.1.

mod support;

use support::*;

const MIB: usize = 1 << 20;

fn synced(tag: &str, files: &[(&str, Vec<u8>)]) -> (Home, String, tempfile::TempDir) {
    let home = Home::new();
    let b = bucket(tag);
    let src = tempfile::tempdir().unwrap();
    for (rel, data) in files {
        write(src.path(), rel, data);
    }
    let dst = format!("harbor-s3:{b}");
    let args = [
        &["sync", src.path().to_str().unwrap(), &dst][..],
        &SMALL_PARTS,
    ]
    .concat();
    ok(&s3ferry(&home, &args));
    (home, b, src)
}

#[test]
fn check_reports_missing_size_and_content_differences_like_rclone() {
    let files = [
        ("a/missing.txt", b"soon gone".to_vec()),
        ("b/size.txt", b"12345".to_vec()),
        ("c/content.txt", b"abcde".to_vec()),
        ("d/fine.txt", b"fine".to_vec()),
        ("e/big-content.bin", bytes(11 * MIB, 7)),
    ];
    let (home, b, src) = synced("diff", &files);
    delete(&b, "a/missing.txt");
    put(&b, "b/size.txt", b"123456");
    put(&b, "c/content.txt", b"abcdX");
    // Same size, different bytes, written as a multipart object with our part size.
    let mut other = bytes(11 * MIB, 7);
    other[6 * MIB] ^= 1;
    put_multipart(&b, "e/big-content.bin", &other, 5 * MIB);
    put(&b, "only-in-bucket.txt", b"extra");

    let dst = format!("harbor-s3:{b}");
    let combined = home.path().join("combined.txt");
    let missing = home.path().join("missing.txt");
    let rep = home.path().join("check.json");
    let s = src.path().to_str().unwrap();
    let out = s3ferry(
        &home,
        &[
            "check",
            s,
            &dst,
            "--one-way",
            "--combined",
            combined.to_str().unwrap(),
            "--missing-on-dst",
            missing.to_str().unwrap(),
            "--report",
            rep.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains(&format!("ERROR : a/missing.txt: file not in S3 bucket {b}")),
        "{err}"
    );
    assert!(err.contains("ERROR : b/size.txt: sizes differ"), "{err}");
    assert!(err.contains("ERROR : c/content.txt: md5 differ"), "{err}");
    assert!(
        err.contains("ERROR : e/big-content.bin: md5 differ"),
        "{err}"
    );
    assert!(
        err.contains(&format!("NOTICE: S3 bucket {b}: 4 differences found")),
        "{err}"
    );
    assert!(
        err.contains(&format!("NOTICE: S3 bucket {b}: 1 files missing")),
        "{err}"
    );
    assert!(
        err.contains(&format!("NOTICE: S3 bucket {b}: 1 matching files")),
        "{err}"
    );
    assert!(
        !err.contains("only-in-bucket"),
        "--one-way ignores extra objects: {err}"
    );
    assert!(!err.contains("0 differences found"));
    let combined = std::fs::read_to_string(combined).unwrap();
    for line in [
        "- a/missing.txt",
        "* b/size.txt",
        "* c/content.txt",
        "= d/fine.txt",
        "* e/big-content.bin",
    ] {
        assert!(
            combined.lines().any(|l| l == line),
            "{line:?} not in {combined:?}"
        );
    }
    assert_eq!(std::fs::read_to_string(missing).unwrap(), "a/missing.txt\n");
    let r = report(&rep);
    assert_eq!(r["missing_on_dst"], 1);
    assert_eq!(r["size_differ"], 1);
    assert_eq!(r["hash_differ"], 2);
    assert_eq!(r["matching"], 1);
    assert_eq!(r["differences"].as_array().unwrap().len(), 4);

    // Without --one-way the extra object is a difference too.
    let out = s3ferry(&home, &["check", s, &dst]);
    let err = stderr(&out);
    assert!(
        err.contains("only-in-bucket.txt: file not in Local file system at"),
        "{err}"
    );
    assert!(err.contains("5 differences found"), "{err}");

    // --download compares bytes, not ETags, and agrees.
    let rep = home.path().join("dl.json");
    let out = s3ferry(
        &home,
        &[
            "check",
            s,
            &dst,
            "--one-way",
            "--download",
            "--report",
            rep.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 1);
    let r = report(&rep);
    assert_eq!(
        (
            r["hash_differ"].as_u64(),
            r["size_differ"].as_u64(),
            r["matching"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(
        r["requests"]["get"], 3,
        "every same-size object downloaded: {r}"
    );
}

#[test]
fn check_verifies_multipart_objects_from_other_tools() {
    // rclone's 5 MiB parts, the AWS CLI's 8 MiB parts, the registry's 10 MiB: no metadata.
    let home = Home::new();
    let b = bucket("foreign");
    let src = tempfile::tempdir().unwrap();
    for (name, len, part) in [
        ("rclone.bin", 13 * MIB + 3, 5 * MIB),
        ("awscli.bin", 20 * MIB + 1, 8 * MIB),
        ("registry.bin", 25 * MIB, 10 * MIB),
    ] {
        let data = bytes(len, len as u64);
        write(src.path(), name, &data);
        let etag = put_multipart(&b, name, &data, part);
        assert!(
            etag.ends_with(&format!("-{}", len.div_ceil(part))),
            "{etag}"
        );
    }
    let dst = format!("harbor-s3:{b}");
    let rep = home.path().join("r.json");
    let err = ok(&s3ferry(
        &home,
        &[
            "check",
            src.path().to_str().unwrap(),
            &dst,
            "--one-way",
            "--no-download",
            "--report",
            rep.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("0 differences found"), "{err}");
    assert!(err.contains("3 matching files"), "{err}");
    assert_eq!(
        report(&rep)["requests"]["get"],
        0,
        "proven by ETag, nothing downloaded"
    );
}

#[test]
fn odd_part_sizes_are_learned_from_head_part_number() {
    // A multipart object with an odd part size that no common size reproduces: the server
    // tells part 1's length (HEAD ?partNumber=1), which proves the ETag without a download.
    let home = Home::new();
    let b = bucket("odd");
    let src = tempfile::tempdir().unwrap();
    let data = bytes(12 * MIB, 3);
    write(src.path(), "odd.bin", &data);
    put_multipart(&b, "odd.bin", &data, 5 * MIB + 12345);
    let dst = format!("harbor-s3:{b}");
    let s = src.path().to_str().unwrap();
    let rep = home.path().join("r.json");
    let err = ok(&s3ferry(
        &home,
        &[
            "check",
            s,
            &dst,
            "--one-way",
            "--no-download",
            "--report",
            rep.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("0 differences found"), "{err}");
    let r = report(&rep);
    assert_eq!(
        (
            r["requests"]["head"].as_u64(),
            r["requests"]["get"].as_u64()
        ),
        (Some(1), Some(0)),
        "{r}"
    );
    // And a one-byte change of such an object is caught.
    let mut changed = data.clone();
    changed[1] ^= 0xff;
    put_multipart(&b, "odd.bin", &changed, 5 * MIB + 12345);
    let out = s3ferry(&home, &["check", s, &dst, "--one-way"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("odd.bin: md5 differ"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kms_objects_are_downloaded_or_reported_never_silently_matched() {
    // SSE-KMS ETags are not MD5s: a differing ETag proves nothing, so check downloads (default)
    // or, with --no-download, counts the object as unverified and never prints "0 differences".
    use aws_sdk_s3::types::ServerSideEncryption;
    let home = Home::new();
    let b = bucket("kms");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "same.bin", b"identical content");
    write(src.path(), "changed.bin", b"original content!");
    let c = client();
    rt().block_on(async {
        for (k, body) in [
            ("same.bin", &b"identical content"[..]),
            ("changed.bin", &b"tampered content!"[..]),
        ] {
            c.put_object()
                .bucket(&b)
                .key(k)
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .body(body.to_vec().into())
                .send()
                .await
                .unwrap();
        }
    });
    let dst = format!("harbor-s3:{b}");
    let s = src.path().to_str().unwrap();
    let out = s3ferry(&home, &["check", s, &dst, "--one-way", "--no-download"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains("changed.bin: hash could not be checked"),
        "{err}"
    );
    assert!(err.contains("1 hashes could not be checked"), "{err}");
    assert!(!err.contains("0 differences found"), "{err}");

    let (out, r) = s3ferry_reported(&home, &["check", s, &dst, "--one-way"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("ERROR : changed.bin: md5 differ"), "{err}");
    assert_eq!(r["requests"]["get"], 1, "downloaded to compare");
}

#[test]
fn check_of_an_empty_tree_and_an_empty_bucket() {
    let home = Home::new();
    let b = bucket("empty");
    let src = tempfile::tempdir().unwrap();
    let err = ok(&s3ferry(
        &home,
        &[
            "check",
            src.path().to_str().unwrap(),
            &format!("harbor-s3:{b}"),
            "--one-way",
        ],
    ));
    assert!(err.contains("0 differences found"), "{err}");
}
