//! End-to-end tests of `sync` and `copy` against a real S3 server (moto) on 127.0.0.1.

mod support;

use std::time::{Duration, SystemTime};

use support::*;

const MIB: usize = 1 << 20;
/// The generated tree: (relative path, content).
fn tree() -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("empty".to_string(), Vec::new()),
        ("at-cutoff.bin".to_string(), bytes(5 * MIB, 1)),
        ("two-parts-minus-1.bin".to_string(), bytes(10 * MIB - 1, 2)),
        ("two-parts.bin".to_string(), bytes(10 * MIB, 3)),
        ("two-parts-plus-1.bin".to_string(), bytes(10 * MIB + 1, 4)),
        ("dir/multi part.bin".to_string(), bytes(17 * MIB + 123, 5)),
        ("names/with space.txt".to_string(), b"space".to_vec()),
        ("names/ünïcødé-名前.txt".to_string(), b"unicode".to_vec()),
        ("names/plus+sign.txt".to_string(), b"plus".to_vec()),
        ("names/percent%20.txt".to_string(), b"percent".to_vec()),
        ("names/hash#tag.txt".to_string(), b"hash".to_vec()),
        ("names/just-under.bin".to_string(), bytes(5 * MIB - 1, 6)),
    ];
    for i in 0..20 {
        files.push((
            format!("docker/registry/v2/repositories/r/_layers/sha256/{i:064x}/link"),
            format!("sha256:{i:064x}").into_bytes(),
        ));
    }
    files
}

fn make_tree(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let files = tree();
    for (rel, data) in &files {
        let p = write(root, rel, data);
        make_old(&p);
    }
    files
}

#[test]
fn sync_verifies_every_object_and_a_rerun_sends_nothing() {
    let home = Home::new();
    let b = bucket("tree");
    let src = tempfile::tempdir().unwrap();
    let files = make_tree(src.path());
    let dst = format!("harbor-s3:{b}");
    let report1 = home.path().join("r1.json");
    let mut args = vec![
        "sync",
        src.path().to_str().unwrap(),
        &dst,
        "--progress",
        "--report",
        report1.to_str().unwrap(),
    ];
    args.extend(SMALL_PARTS);
    // Uploaded in a later second than the tree was made: the rerun needs nothing but the
    // listing.
    next_second();
    let out = s3ferry(&home, &args);
    ok(&out);

    let listed = list(&b);
    assert_eq!(listed.len(), files.len(), "{listed:?}");
    for (rel, data) in &files {
        let o = listed
            .iter()
            .find(|o| &o.key == rel)
            .unwrap_or_else(|| panic!("{rel} missing"));
        assert_eq!(o.size, data.len() as u64, "{rel}");
        if data.len() >= 5 * MIB {
            let parts = data.len().div_ceil(5 * MIB);
            assert!(o.etag.ends_with(&format!("-{parts}")), "{rel}: {}", o.etag);
        } else {
            assert_eq!(o.etag, md5_hex(data), "{rel}");
        }
    }
    assert_eq!(
        get(&b, "dir/multi part.bin"),
        files
            .iter()
            .find(|f| f.0 == "dir/multi part.bin")
            .unwrap()
            .1
    );
    assert_eq!(get(&b, "names/hash#tag.txt"), b"hash");
    assert!(
        !listed.iter().any(|o| o.key.ends_with('/')),
        "no directory markers"
    );
    let r1 = report(&report1);
    assert_eq!(r1["files_uploaded"], files.len() as u64);
    assert_eq!(r1["errors_temporary"], 0);

    // check --one-way proves it.
    let out = s3ferry(
        &home,
        &[
            "check",
            src.path().to_str().unwrap(),
            &dst,
            "--one-way",
            "--progress",
        ],
    );
    let err = ok(&out);
    assert!(
        err.contains(&format!("NOTICE: S3 bucket {b}: 0 differences found")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{} matching files", files.len())),
        "{err}"
    );

    // A rerun after a clean run: one listing request, nothing uploaded.
    let report2 = home.path().join("r2.json");
    let mut args = vec![
        "sync",
        src.path().to_str().unwrap(),
        &dst,
        "--report",
        report2.to_str().unwrap(),
    ];
    args.extend(SMALL_PARTS);
    ok(&s3ferry(&home, &args));
    let r2 = report(&report2);
    assert_eq!(r2["files_uploaded"], 0, "{r2}");
    assert_eq!(
        r2["requests"]["total"], 2,
        "only the listing, and one look for leftover uploads: {r2}"
    );
    assert_eq!(r2["requests"]["list_uploads"], 1);
    assert_eq!(r2["requests"]["list"], 1);
    assert_eq!(r2["requests"]["bytes_sent"], 0);
}

#[test]
fn changed_files_are_uploaded_again() {
    let home = Home::new();
    let b = bucket("changed");
    let src = tempfile::tempdir().unwrap();
    let p = write(src.path(), "a.txt", b"version 1");
    make_old(&p);
    write(src.path(), "b.txt", b"stays");
    make_old(&src.path().join("b.txt"));
    let dst = format!("harbor-s3:{b}");
    ok(&s3ferry(
        &home,
        &["sync", src.path().to_str().unwrap(), &dst],
    ));
    // Same size, new content and a later mtime.
    std::fs::write(&p, b"version 2").unwrap();
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let rep = home.path().join("r.json");
    ok(&s3ferry(
        &home,
        &[
            "sync",
            src.path().to_str().unwrap(),
            &dst,
            "--report",
            rep.to_str().unwrap(),
        ],
    ));
    assert_eq!(report(&rep)["files_uploaded"], 1);
    assert_eq!(get(&b, "a.txt"), b"version 2");
    // A size change is caught even with --size-only.
    std::fs::write(&p, b"version three").unwrap();
    ok(&s3ferry(
        &home,
        &["copy", src.path().to_str().unwrap(), &dst, "--size-only"],
    ));
    assert_eq!(get(&b, "a.txt"), b"version three");
    // --checksum finds a same-size content change whatever the mtime says.
    std::fs::write(&p, b"version THREE").unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(86400))
        .unwrap();
    ok(&s3ferry(
        &home,
        &["copy", src.path().to_str().unwrap(), &dst, "--size-only"],
    ));
    assert_eq!(get(&b, "a.txt"), b"version three", "--size-only must skip");
    ok(&s3ferry(
        &home,
        &["copy", src.path().to_str().unwrap(), &dst, "--checksum"],
    ));
    assert_eq!(get(&b, "a.txt"), b"version THREE");
}

#[test]
fn sync_deletes_copy_does_not_and_errors_block_deletes() {
    let home = Home::new();
    let b = bucket("deletes");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "keep.txt", b"keep");
    let dst = format!("harbor-s3:{b}");
    put(&b, "extra.txt", b"extra");
    ok(&s3ferry(
        &home,
        &["copy", src.path().to_str().unwrap(), &dst],
    ));
    assert!(
        list(&b).iter().any(|o| o.key == "extra.txt"),
        "copy never deletes"
    );

    // --dry-run shows the delete and does nothing.
    let err = ok(&s3ferry(
        &home,
        &["sync", src.path().to_str().unwrap(), &dst, "--dry-run"],
    ));
    assert!(
        err.contains("extra.txt: Skipped delete as --dry-run is set"),
        "{err}"
    );
    assert!(list(&b).iter().any(|o| o.key == "extra.txt"));

    // An error anywhere (here a symlink without --copy-links) means nothing is deleted.
    std::os::unix::fs::symlink("keep.txt", src.path().join("link")).unwrap();
    let out = s3ferry(&home, &["sync", src.path().to_str().unwrap(), &dst]);
    let err = stderr(&out);
    assert_eq!(code(&out), 6, "{err}");
    assert!(
        err.contains("not deleting files as there were IO errors"),
        "{err}"
    );
    assert!(err.contains("link: is a symlink"), "{err}");
    assert!(
        list(&b).iter().any(|o| o.key == "extra.txt"),
        "nothing deleted after an error"
    );

    // With --copy-links the run is clean and the extra object goes.
    ok(&s3ferry(
        &home,
        &["sync", src.path().to_str().unwrap(), &dst, "--copy-links"],
    ));
    let keys: Vec<String> = list(&b).into_iter().map(|o| o.key).collect();
    assert_eq!(keys, vec!["keep.txt".to_string(), "link".to_string()]);
}

#[test]
fn max_delete_refuses_all_deletes_over_the_limit() {
    let home = Home::new();
    let b = bucket("maxdel");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "keep.txt", b"keep");
    for k in ["x1", "x2", "sub/x3"] {
        put(&b, k, b"x");
    }
    let dst = format!("harbor-s3:{b}");
    let out = s3ferry(
        &home,
        &[
            "sync",
            src.path().to_str().unwrap(),
            &dst,
            "--max-delete",
            "2",
        ],
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 7, "{err}");
    assert!(err.contains("--max-delete 2"), "{err}");
    assert_eq!(list(&b).len(), 4, "none deleted");
    ok(&s3ferry(
        &home,
        &[
            "sync",
            src.path().to_str().unwrap(),
            &dst,
            "--max-delete",
            "3",
        ],
    ));
    assert_eq!(list(&b).len(), 1);
}

#[test]
fn prefix_and_filters_scope_the_sync() {
    let home = Home::new();
    let b = bucket("prefix");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a/keep.txt", b"1");
    write(src.path(), "a/skip.tmp", b"2");
    put(&b, "other/outside.txt", b"outside the prefix");
    put(&b, "pre/fix/old.tmp", b"excluded, so never deleted");
    let dst = format!("harbor-s3:{b}/pre/fix");
    ok(&s3ferry(
        &home,
        &[
            "sync",
            src.path().to_str().unwrap(),
            &dst,
            "--exclude",
            "*.tmp",
        ],
    ));
    let mut keys: Vec<String> = list(&b).into_iter().map(|o| o.key).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["other/outside.txt", "pre/fix/a/keep.txt", "pre/fix/old.tmp"]
    );
}

#[test]
fn kill_during_multipart_then_rerun_resumes_and_check_passes() {
    let home = Home::new();
    let b = bucket("resume");
    let src = tempfile::tempdir().unwrap();
    let data = bytes(100 * MIB + 7, 42);
    let p = write(src.path(), "blobs/big/data", &data);
    make_old(&p);
    let dst = format!("harbor-s3:{b}");
    let s = src.path().to_str().unwrap();
    let mut args = vec![
        "sync",
        s,
        &dst,
        "--transfers",
        "1",
        "--s3-upload-concurrency",
        "1",
    ];
    args.extend(SMALL_PARTS);
    let mut child = command(&home, &args, &[])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a few of the 21 parts are on the server, then kill -9.
    let parts_before = wait_for_parts(&mut child, &client(), &b, 3);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = uploads(&b);
    assert_eq!(
        after_kill.len(),
        1,
        "one interrupted upload: {after_kill:?}"
    );
    let listed_parts = after_kill[0].2;
    assert!(
        listed_parts >= parts_before && listed_parts < 21,
        "{listed_parts}"
    );
    assert!(list(&b).is_empty(), "no object yet");

    let rep = home.path().join("resume.json");
    let mut args = vec!["sync", s, &dst, "--report", rep.to_str().unwrap()];
    args.extend(SMALL_PARTS);
    ok(&s3ferry(&home, &args));
    let r = report(&rep);
    assert_eq!(r["files_resumed"], 1, "{r}");
    assert_eq!(
        r["requests"]["create_multipart"], 0,
        "resumed, not restarted: {r}"
    );
    // A part whose body was sent before the kill may still be stored by the server after
    // the listing above: the rerun reuses every part the server holds when it looks.
    let sent = r["requests"]["upload_part"].as_u64().unwrap();
    let reused = r["bytes_reused"].as_u64().unwrap();
    assert_eq!(reused % (5 * MIB) as u64, 0, "whole parts reused: {r}");
    let reused_parts = reused / (5 * MIB) as u64;
    assert!(
        reused_parts >= listed_parts as u64 && reused_parts < 21,
        "every part listed after the kill reused: {r}"
    );
    assert_eq!(sent, 21 - reused_parts, "only missing parts sent: {r}");
    assert!(uploads(&b).is_empty(), "no upload left behind");
    assert_eq!(get(&b, "blobs/big/data"), data);
    let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
    assert!(err.contains("0 differences found"), "{err}");
}

#[test]
fn corrupt_parts_of_an_interrupted_upload_are_resent() {
    // An interrupted upload whose part 2 holds other bytes: the rerun must resend part 2, keep
    // part 1, and produce an object with the right content.
    let home = Home::new();
    let b = bucket("badpart");
    let src = tempfile::tempdir().unwrap();
    let data = bytes(12 * MIB, 9);
    let p = write(src.path(), "f.bin", &data);
    make_old(&p);
    let c = client();
    rt().block_on(async {
        let mut meta = std::collections::HashMap::new();
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let d = mtime.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        meta.insert(
            "mtime".to_string(),
            format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
        );
        meta.insert("s3ferry-part-size".to_string(), (5 * MIB).to_string());
        let id = c
            .create_multipart_upload()
            .bucket(&b)
            .key("f.bin")
            .set_metadata(Some(meta))
            .send()
            .await
            .unwrap();
        let id = id.upload_id().unwrap();
        c.upload_part()
            .bucket(&b)
            .key("f.bin")
            .upload_id(id)
            .part_number(1)
            .body(data[..5 * MIB].to_vec().into())
            .send()
            .await
            .unwrap();
        c.upload_part()
            .bucket(&b)
            .key("f.bin")
            .upload_id(id)
            .part_number(2)
            .body(bytes(5 * MIB, 777).into())
            .send()
            .await
            .unwrap();
    });
    let rep = home.path().join("r.json");
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let mut args = vec!["sync", s, &dst, "--report", rep.to_str().unwrap()];
    args.extend(SMALL_PARTS);
    ok(&s3ferry(&home, &args));
    let r = report(&rep);
    assert_eq!(r["files_resumed"], 1, "{r}");
    assert_eq!(
        r["requests"]["upload_part"], 2,
        "parts 2 and 3 sent, part 1 reused: {r}"
    );
    assert_eq!(get(&b, "f.bin"), data);
}

#[test]
fn listings_over_one_page_are_followed() {
    // moto pages ListObjectsV2 at 1,000 keys, like S3.
    let home = Home::new();
    let b = bucket("pages");
    let src = tempfile::tempdir().unwrap();
    for i in 0..1100 {
        let p = write(
            src.path(),
            &format!("links/{i:05}/link"),
            format!("sha256:{i:064x}").as_bytes(),
        );
        make_old(&p);
    }
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    next_second();
    ok(&s3ferry(&home, &["sync", s, &dst, "--transfers", "64"]));
    assert_eq!(list(&b).len(), 1100);
    let rep = home.path().join("r.json");
    ok(&s3ferry(
        &home,
        &["sync", s, &dst, "--report", rep.to_str().unwrap()],
    ));
    let r = report(&rep);
    assert_eq!(
        (r["files_uploaded"].as_u64(), r["files_skipped"].as_u64()),
        (Some(0), Some(1100)),
        "{r}"
    );
    // Two pages, plus at most one directory lookup made while the second page was on its way.
    let lists = r["requests"]["list"].as_u64().unwrap();
    assert!((2..=3).contains(&lists), "{r}");
    assert_eq!(
        r["requests"]["total"],
        lists + 1,
        "nothing but listings: {r}"
    );
    assert_eq!(
        r["requests"]["list_uploads"], 1,
        "the look for leftover uploads: {r}"
    );
    let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
    assert!(err.contains("1100 matching files"), "{err}");
}

#[test]
fn an_empty_source_never_empties_the_bucket_by_default() {
    let home = Home::new();
    let b = bucket("emptysrc");
    put(&b, "blob", b"precious");
    let src = tempfile::tempdir().unwrap();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let out = s3ferry(&home, &["sync", s, &dst]);
    let err = stderr(&out);
    assert_eq!(code(&out), 7, "{err}");
    assert!(
        err.contains("the source is empty (is the volume mounted, the bucket right?)"),
        "{err}"
    );
    assert_eq!(list(&b).len(), 1);
    ok(&s3ferry(&home, &["sync", s, &dst, "--max-delete", "1"]));
    assert!(list(&b).is_empty());
}

#[test]
fn big_listings_are_cut_into_pieces_listed_in_parallel_that_miss_and_repeat_nothing() {
    // 6,000 keys in a registry-like tree: 6 pages in one chain, or pieces listed in parallel.
    let home = Home::new();
    let b = bucket("ranges");
    let src = tempfile::tempdir().unwrap();
    for i in 0..3000u32 {
        use sha2::Digest;
        let data = i.to_le_bytes();
        let hex = hex::encode(sha2::Sha256::digest(data));
        make_old(&write(
            src.path(),
            &format!("blobs/sha256/{}/{hex}/data", &hex[..2]),
            &data,
        ));
        make_old(&write(
            src.path(),
            &format!("repositories/r{:03}/_layers/sha256/{hex}/link", i % 100),
            format!("sha256:{hex}").as_bytes(),
        ));
    }
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    next_second();
    ok(&s3ferry(&home, &["sync", s, &dst, "--transfers", "128"]));
    assert_eq!(list(&b).len(), 6000);
    let rep = home.path().join("r.json");
    // One page, then a piece of two more pages (the blobs), then the rest cut into pieces.
    let err = ok(&s3ferry(
        &home,
        &["sync", s, &dst, "-vv", "--report", rep.to_str().unwrap()],
    ));
    let r = report(&rep);
    assert_eq!(
        (r["files_uploaded"].as_u64(), r["files_skipped"].as_u64()),
        (Some(0), Some(6000)),
        "every key listed once: {r}"
    );
    assert_eq!(r["deletes_planned"], 0, "{r}");
    assert_eq!(
        r["requests"]["list_uploads"], 1,
        "the look for leftover uploads: {r}"
    );
    assert_eq!(r["requests"]["total"], lists_and_one(&r), "{r}");
    assert!(err.contains("ranges in parallel"), "{err}");
    // Two-way check: a key listed twice or missed would show as a difference.
    let err = ok(&s3ferry(&home, &["check", s, &dst]));
    assert!(err.contains("0 differences found"), "{err}");
    assert!(err.contains("6000 matching files"), "{err}");
}

/// The listing's requests plus the one look for leftover multipart uploads a clean run makes.
fn lists_and_one(r: &serde_json::Value) -> u64 {
    r["requests"]["list"].as_u64().unwrap() + 1
}

/// Parts are read and hashed a group at a time, each group paid for from the memory budget in
/// one step. However tight the budget, many large files at once finish (no file holds part of
/// a group's memory while waiting for the rest), every part is proven, and the bytes arrive.
#[test]
fn tight_memory_budgets_with_many_large_files_finish_and_prove_every_part() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("big/{i}"), bytes(23 * MIB + 7 * i, 60 + i as u64)))
        .collect();
    for (rel, data) in &files {
        write(src.path(), rel, data);
    }
    let s = src.path().to_str().unwrap();
    // 12 MiB: one part per group (two groups of one 5 MiB part fit); 24 MiB: two per group.
    for budget in ["12Mi", "24Mi", "1Gi"] {
        let b = bucket(&format!("budget-{}", budget.to_lowercase()));
        let dst = format!("harbor-s3:{b}");
        let mut args = vec![
            "sync",
            s,
            &dst,
            "--transfers",
            "6",
            "--s3-upload-concurrency",
            "4",
            "--max-buffer-memory",
            budget,
        ];
        args.extend(SMALL_PARTS);
        let (out, r) = s3ferry_reported(&home, &args);
        ok(&out);
        assert_eq!(r["files_uploaded"], 6, "{budget}: {r}");
        assert_eq!(r["hash_not_comparable"], 0, "{budget}: {r}");
        assert_eq!(r["requests"]["upload_part"], 6 * 5, "{budget}: {r}");
        for (rel, data) in &files {
            assert!(get(&b, rel) == *data, "{budget}: {rel}");
        }
    }
}

/// `--max-transfer` caps the bytes that move, counted as they are sent (rclone's meaning):
/// a hard cutoff stops the transfers in flight the moment the limit is passed, a soft one lets
/// them end but starts nothing more; either way the run exits 8 and deletes nothing. Six
/// 10 MiB files with 25 MiB allowed and 64 transfers used to be uploaded whole, exit 0.
#[test]
fn max_transfer_caps_the_bytes_sent_in_every_cutoff_mode() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    for i in 0..6 {
        write_old(src.path(), &format!("f{i}.bin"), &bytes(10 * MIB, 40 + i));
    }
    let s = src.path().to_str().unwrap();
    for (mode, transfers, most) in [("hard", "64", 2), ("hard", "2", 2), ("soft", "64", 6)] {
        let b = bucket(&format!("cap-{mode}-{transfers}"));
        put(&b, "extra", b"never deleted by a cut-off run");
        let dst = format!("harbor-s3:{b}");
        let args = [
            "sync",
            s,
            &dst,
            "--max-transfer",
            "25M",
            "--cutoff-mode",
            mode,
        ];
        let (out, r) = s3ferry_reported(&home, &[&args[..], &["--transfers", transfers]].concat());
        let err = stderr(&out);
        assert_eq!(code(&out), 8, "{mode} {transfers}: {err}");
        assert!(err.contains("stopped at --max-transfer"), "{err}");
        let uploaded = list(&b).iter().filter(|o| o.key != "extra").count();
        assert!(
            uploaded <= most,
            "{mode} {transfers}: {uploaded} files uploaded: {err}"
        );
        if mode == "soft" {
            assert_eq!(uploaded, 6, "soft: what started ends");
        }
        assert!(list(&b).iter().any(|o| o.key == "extra"), "nothing deleted");
        assert_eq!(r["transfer_exceeded"], true, "{r}");
    }
}

/// Progress counts the bytes of a single PUT as they are sent, not when it ends: at
/// `--bwlimit 4M`, a 12 MiB file shows bytes moving within its first seconds.
#[test]
fn progress_counts_a_put_as_it_goes() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "one.bin", &bytes(12 * MIB, 77));
    let b = bucket("progress-put");
    let out = s3ferry(
        &home,
        &[
            "copy",
            src.path().to_str().unwrap(),
            &format!("harbor-s3:{b}"),
            "--bwlimit",
            "4M",
            "--stats",
            "1s",
        ],
    );
    let err = ok(&out);
    let moving: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("Transferred:") && l.contains("files 0/1"))
        .filter(|l| !l.contains("Transferred: 0 B"))
        .collect();
    assert!(
        !moving.is_empty(),
        "no progress before the file ended:\n{err}"
    );
}

/// One scrape of the metrics endpoint at `addr`: the body, or None if it did not answer.
fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}

/// The value of the sample `name` (with its labels) in a scrape.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_run_is_observable_from_outside_its_pod() {
    use std::io::BufRead;
    let home = Home::new();
    let b = bucket("observed");
    let src = tempfile::tempdir().unwrap();
    for i in 0..6 {
        write(src.path(), &format!("blob-{i}"), &bytes(MIB, 900 + i));
    }
    // Kubernetes creates the file before the container starts; s3ferry only writes into it.
    let termination = home.path().join("termination-log");
    std::fs::write(&termination, "").unwrap();
    let dst = format!("harbor-s3:{b}");
    let mut cmd = command(
        &home,
        &[
            "sync",
            src.path().to_str().unwrap(),
            &dst,
            "--metrics-addr",
            "127.0.0.1:0",
            "--termination-log",
            termination.to_str().unwrap(),
            // 6 MiB at 1 MiB/s: several seconds to watch.
            "--bwlimit",
            "1M",
        ],
        &[],
    );
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run s3ferry");
    let pid = child.id() as i32;
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(120));
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the endpoint's address is logged at start");
        log.push(line.clone());
        if let Some(rest) = line.split("metrics at http://").nth(1) {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    // Scrape while the run goes, until it has moved bytes but not finished.
    let mut mid_run = None;
    for _ in 0..200 {
        let Some(text) = scrape(&addr) else { break };
        let moved = sample(&text, "rclone_bytes_transferred_total").unwrap_or(0.0);
        if moved > 0.0 && moved < (6 * MIB) as f64 {
            mid_run = Some(text);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = mid_run.expect("a scrape during the run saw bytes moving");
    assert_eq!(sample(&text, "s3ferry_running"), Some(1.0), "{text}");
    assert!(
        sample(&text, "s3ferry_transfers_in_flight").unwrap() >= 1.0,
        "{text}"
    );
    let budget = sample(&text, "s3ferry_budget_bytes").expect("the budget is shown");
    let used = sample(&text, "s3ferry_budget_used_bytes").unwrap();
    assert!(budget > 0.0 && used <= budget, "{text}");
    for name in [
        "rclone_files_transferred_total",
        "rclone_errors_total",
        "rclone_checked_files_total",
        "s3ferry_proofs_total{kind=\"etag\"}",
        "s3ferry_requests_total{op=\"put\"}",
        "s3ferry_retries_total{kind=\"request\"}",
    ] {
        assert!(sample(&text, name).is_some(), "{name} missing:\n{text}");
    }
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let status = child.wait().unwrap();
    drop(watchdog);
    log.extend(rx.try_iter());
    assert_eq!(status.code(), Some(0), "{}", log.join("\n"));
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.contains("uploaded 6 files (6 MiB)") && message.ends_with("exit 0 (success)\n"),
        "{message}"
    );
    assert!(message.len() <= 4096);

    // The check's outcome, and a failure's, in the same place.
    let o = s3ferry(
        &home,
        &[
            "check",
            src.path().to_str().unwrap(),
            &dst,
            "--one-way",
            "--termination-log",
            termination.to_str().unwrap(),
        ],
    );
    ok(&o);
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.contains("0 differences found; 6 matching files"),
        "{message}"
    );
    let o = s3ferry(
        &home,
        &[
            "sync",
            src.path().join("no-such-dir").to_str().unwrap(),
            &dst,
            "--termination-log",
            termination.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 3);
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.starts_with("ERROR : source directory")
            && message.ends_with("exit 3 (source or bucket not found)\n"),
        "{message}"
    );
}
