//! Registry mode on a distribution storage tree: blob digests verified while reading, links
//! validated and uploaded only after their blobs, `_uploads` left out, dangling links reported.

mod support;

use std::path::Path;

use support::*;

const V2: &str = "docker/registry/v2";

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A small registry: `n` blobs (one over the 5 MiB cutoff), a layer link for each, one
/// manifest revision and tag, and an unfinished upload. Returns the blob digests.
fn registry(root: &Path, n: usize) -> Vec<String> {
    let mut digests = Vec::new();
    for i in 0..n {
        let data = bytes(if i == 0 { 6 << 20 } else { 500 + i * 7 }, i as u64 + 100);
        let d = sha256_hex(&data);
        make_old(&write(
            root,
            &format!("{V2}/blobs/sha256/{}/{d}/data", &d[..2]),
            &data,
        ));
        make_old(&write(
            root,
            &format!("{V2}/repositories/lib/app/_layers/sha256/{d}/link"),
            format!("sha256:{d}").as_bytes(),
        ));
        digests.push(d);
    }
    let m = &digests[n - 1];
    for link in [
        format!("{V2}/repositories/lib/app/_manifests/revisions/sha256/{m}/link"),
        format!("{V2}/repositories/lib/app/_manifests/tags/latest/current/link"),
        format!("{V2}/repositories/lib/app/_manifests/tags/latest/index/sha256/{m}/link"),
    ] {
        make_old(&write(root, &link, format!("sha256:{m}").as_bytes()));
    }
    make_old(&write(
        root,
        &format!("{V2}/repositories/lib/app/_uploads/5f0e/data"),
        &bytes(3000, 9),
    ));
    make_old(&write(
        root,
        &format!("{V2}/repositories/lib/app/_uploads/5f0e/startedat"),
        b"2026-01-01T00:00:00Z",
    ));
    digests
}

/// Flip one bit of a blob's data file at `at`, keeping its path (and so its claimed digest).
fn corrupt_blob(root: &Path, digest: &str, at: usize) {
    let p = root.join(format!("{V2}/blobs/sha256/{}/{digest}/data", &digest[..2]));
    let mut data = std::fs::read(&p).unwrap();
    data[at] ^= 1;
    std::fs::write(&p, &data).unwrap();
    make_old(&p);
}

#[test]
fn registry_sync_skips_uploads_and_check_passes() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    registry(src.path(), 6);
    let b = bucket("reg");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let rep = home.path().join("r.json");
    let mut args = vec!["sync", s, &dst, "--report", rep.to_str().unwrap()];
    args.extend(SMALL_PARTS);
    let err = ok(&s3ferry(&home, &args));
    assert!(err.contains("registry mode"), "{err}");
    assert!(err.contains("skipped 2 files"), "{err}");
    let r = report(&rep);
    assert_eq!(r["registry_uploads_skipped"], 2, "{r}");
    assert_eq!(r["files_uploaded"], 6 + 6 + 3, "{r}");
    let keys: Vec<String> = list(&b).into_iter().map(|o| o.key).collect();
    assert!(!keys.iter().any(|k| k.contains("_uploads")), "{keys:?}");
    assert!(keys.iter().all(|k| !k.starts_with('/')));
    let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
    assert!(
        err.contains("0 differences found"),
        "_uploads are not missing: {err}"
    );
    // _uploads already in the bucket are not deleted by a sync either.
    put(
        &b,
        &format!("{V2}/repositories/lib/app/_uploads/old/data"),
        b"x",
    );
    ok(&s3ferry(&home, &["sync", s, &dst]));
    assert!(list(&b).iter().any(|o| o.key.contains("_uploads/old")));
}

#[test]
fn corrupt_blobs_are_refused_and_their_links_held_back() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    let digests = registry(src.path(), 4);
    // Flip a byte in a small blob and in the multipart one.
    for d in [&digests[0], &digests[2]] {
        corrupt_blob(src.path(), d, 100);
    }
    let b = bucket("corruptblob");
    put(&b, "unrelated", b"kept: a failed sync deletes nothing");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let mut args = vec!["sync", s, &dst];
    args.extend(SMALL_PARTS);
    let out = s3ferry(&home, &args);
    let err = stderr(&out);
    assert_eq!(code(&out), 6, "{err}");
    for d in [&digests[0], &digests[2]] {
        assert!(err.contains(&format!("its path says sha256:{d}")), "{err}");
        assert!(
            err.contains(&format!(
                "link to sha256:{d}, which is neither in the bucket nor uploaded"
            )),
            "{err}"
        );
    }
    let keys: Vec<String> = list(&b).into_iter().map(|o| o.key).collect();
    for d in [&digests[0], &digests[2]] {
        assert!(
            !keys.iter().any(|k| k.contains(d.as_str())),
            "nothing of {d} uploaded: {keys:?}"
        );
    }
    for d in [&digests[1], &digests[3]] {
        assert!(
            keys.iter().any(|k| k.ends_with(&format!("{d}/data"))),
            "{keys:?}"
        );
        assert!(
            keys.iter()
                .any(|k| k.ends_with(&format!("_layers/sha256/{d}/link"))),
            "{keys:?}"
        );
    }
    assert!(keys.contains(&"unrelated".to_string()));
    assert!(
        uploads(&b).is_empty(),
        "the corrupt multipart upload was aborted"
    );
}

#[test]
fn check_reports_dangling_links() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    let digests = registry(src.path(), 3);
    let b = bucket("dangling");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    ok(&s3ferry(&home, &["sync", s, &dst]));
    let d = &digests[2]; // the manifest: 1 layer link + revision + tag index + tag current
    delete(&b, &format!("{V2}/blobs/sha256/{}/{d}/data", &d[..2]));
    let (out, r) = s3ferry_reported(&home, &["check", s, &dst, "--one-way"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains(&format!("{d}/data: file not in S3 bucket")),
        "{err}"
    );
    assert!(err.contains("4 dangling links"), "{err}");
    assert_eq!(r["dangling_links"], 4);
    // --registry off checks files only.
    let out = s3ferry(&home, &["check", s, &dst, "--one-way", "--registry", "off"]);
    assert!(!stderr(&out).contains("dangling link"), "{}", stderr(&out));
}

#[test]
fn check_verifies_source_blob_digests() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    let digests = registry(src.path(), 3);
    // Corrupt the multipart blob and a small one, then upload the corrupt bytes as plain files
    // (--registry off): the bucket matches the source byte for byte, and only the digests can
    // tell that both are wrong.
    for d in [&digests[0], &digests[1]] {
        corrupt_blob(src.path(), d, 10);
    }
    let b = bucket("digests");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let mut args = vec!["sync", s, &dst, "--registry", "off"];
    args.extend(SMALL_PARTS);
    ok(&s3ferry(&home, &args));
    let err = ok(&s3ferry(
        &home,
        &["check", s, &dst, "--one-way", "--registry", "off"],
    ));
    assert!(err.contains("0 differences found"), "{err}");

    let (out, r) = s3ferry_reported(&home, &["check", s, &dst, "--one-way"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    for d in [&digests[0], &digests[1]] {
        assert!(
            err.contains(&format!(
                "{d}/data: corrupt source blob: its path says sha256:{d}"
            )),
            "{err}"
        );
    }
    assert!(err.contains("2 differences found"), "{err}");
    assert_eq!(r["corrupt_blobs"], 2, "{r}");
    assert_eq!(r["blobs_digest_verified"], 1, "{r}");

    // Opting out checks files only; asking for digests outside registry mode is a usage error.
    let err = ok(&s3ferry(
        &home,
        &["check", s, &dst, "--one-way", "--no-verify-digests"],
    ));
    assert!(err.contains("0 differences found"), "{err}");
    let out = s3ferry(
        &home,
        &["check", s, &dst, "--registry", "off", "--verify-digests"],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--verify-digests needs registry mode"));
}

#[test]
fn links_interleave_with_blobs_but_never_precede_them() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    let digests = registry(src.path(), 40);
    let b = bucket("interleave");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let mut args = vec!["sync", s, &dst, "-v", "--transfers", "4"];
    args.extend(SMALL_PARTS);
    let err = ok(&s3ferry(&home, &args));
    // "Copied" lines are logged in the order uploads complete.
    let copied: Vec<&str> = err
        .lines()
        .filter_map(|l| {
            l.split(": Copied")
                .next()
                .filter(|_| l.contains(": Copied"))
        })
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    let at = |suffix: &str| {
        copied
            .iter()
            .position(|p| p.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} not copied: {err}"))
    };
    let mut last_blob = 0;
    let mut first_link = usize::MAX;
    for d in &digests {
        let blob = at(&format!("{d}/data"));
        let link = at(&format!("_layers/sha256/{d}/link"));
        assert!(blob < link, "link of {d} before its blob: {copied:?}");
        last_blob = last_blob.max(blob);
        first_link = first_link.min(link);
    }
    assert!(
        first_link < last_blob,
        "links start while blobs are still uploading: {copied:?}"
    );
    let current = at("tags/latest/current/link");
    assert!(current > last_blob, "a tag's current link goes last");
    let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
    assert!(err.contains("0 differences found"), "{err}");
}
