//! Bucket to bucket, against real servers on 127.0.0.1: on one endpoint (moto) the server
//! copies, and the request counts prove no object body passed through s3ferry; across two
//! servers (moto → s3s-fs) every byte is streamed, hashed and proven; a directory goes
//! dir → S3 → S3 → dir and comes back byte-identical with its mtimes; reruns copy nothing;
//! `sync` deletes what the source no longer has, and only after a clean run.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use support::*;

const MIB: usize = 1 << 20;

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn s3s_endpoint() -> String {
    format!("http://127.0.0.1:{}", s3s_fs().port)
}

/// rclone.conf with the seed remote (moto) and `dr:` (s3s-fs, another server, as a
/// disaster-recovery site would be).
fn two_remotes() -> Home {
    let dr = conf_for(&s3s_endpoint()).replace("[harbor-s3]", "[dr]");
    Home::with_conf(&format!("{}\n{dr}", seed_conf()))
}

/// Where the tag's link sits in [`tree`].
const TAG_LINK: &str = "docker/registry/v2/repositories/lib/app/_manifests/tags/v1/current/link";

/// A small registry tree (blobs named by their SHA-256, one of them multipart at 5 MiB parts,
/// and links to them) beside files of no registry meaning: an empty one, odd names.
fn tree() -> Vec<(String, Vec<u8>)> {
    use sha2::Digest;
    let (big, small) = (bytes(12 * MIB + 7, 1), bytes(5 * MIB, 2));
    let hex = |d: &[u8]| hex::encode(sha2::Sha256::digest(d));
    let (hb, hs) = (hex(&big), hex(&small));
    let v2 = "docker/registry/v2";
    let blob = |h: &str| format!("{v2}/blobs/sha256/{}/{h}/data", &h[..2]);
    vec![
        (blob(&hb), big),
        (blob(&hs), small),
        (
            format!("{v2}/repositories/lib/app/_layers/sha256/{hb}/link"),
            format!("sha256:{hb}").into_bytes(),
        ),
        (TAG_LINK.to_string(), format!("sha256:{hs}").into_bytes()),
        ("empty".to_string(), Vec::new()),
        ("a b/ü+%.txt".to_string(), bytes(1000, 3)),
    ]
}

fn write_tree(root: &Path) {
    for (i, (rel, data)) in tree().iter().enumerate() {
        let p = write(root, rel, data);
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000 + i as u64, 987_654_321);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
}

/// Put an object as a registry would write a manifest: a content type and user metadata.
fn put_typed(c: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    rt().block_on(
        c.put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/vnd.oci.image.manifest.v1+json")
            .metadata("origin", "harbor")
            .body(b"{}".to_vec().into())
            .send(),
    )
    .unwrap();
}

/// The content type and user metadata an object carries.
fn typed(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (String, Option<String>) {
    let h = rt()
        .block_on(c.head_object().bucket(bucket).key(key).send())
        .unwrap();
    (
        h.content_type().unwrap_or_default().to_string(),
        h.metadata().and_then(|m| m.get("origin").cloned()),
    )
}

fn errors(r: &serde_json::Value) -> u64 {
    r["errors_temporary"].as_u64().unwrap() + r["errors_permanent"].as_u64().unwrap()
}

#[test]
fn on_one_endpoint_the_server_copies_and_no_body_passes_through() {
    let home = Home::new();
    let (a, b) = (bucket("mirror-a"), bucket("mirror-b"));
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path());
    let s = src.path().to_str().unwrap();
    let from = format!("harbor-s3:{a}/reg");
    let mut args = vec!["sync", s, &from];
    args.extend(SMALL_PARTS);
    ok(&s3ferry(&home, &args));
    // An object another tool wrote: multipart in 6 MiB parts, none of our metadata.
    let foreign = bytes(13 * MIB, 9);
    put_multipart(&a, "reg/foreign", &foreign, 6 * MIB);
    put_typed(&client(), &a, "reg/typed");
    let n = tree().len() as u64 + 2;

    let to = format!("harbor-s3:{b}/copy");
    let (out, r) = s3ferry_reported(&home, &["copy", &from, &to]);
    ok(&out);
    assert_eq!(r["objects_copied"], n, "{r}");
    assert_eq!(
        r["server_side_copies"], n,
        "every copy proven by equal ETags: {r}"
    );
    assert_eq!(errors(&r), 0, "{r}");
    // No object body through us: no GET, no PUT, no part upload; copies only.
    assert_eq!(r["requests_source"]["get"], 0, "{r}");
    assert_eq!(r["requests"]["get"], 0, "{r}");
    assert_eq!(r["requests"]["put"], 0, "{r}");
    assert_eq!(r["requests"]["upload_part"], 0, "{r}");
    assert!(r["requests"]["copy"].as_u64().unwrap() >= n, "{r}");
    // moto's CopyObject, as AWS's, makes a single-part copy of a multipart object, whose ETag
    // could not be compared with the source's: the three multipart objects are copied part by
    // part in their source's layout instead.
    let multipart = list(&a).iter().filter(|o| o.etag.contains('-')).count();
    assert_eq!(multipart, 3);
    assert_eq!(r["requests"]["create_multipart"], multipart as u64, "{r}");
    // Same keys, same sizes, same ETags (multipart layouts kept), same bytes.
    let strip = |objs: Vec<Obj>, p: &str| {
        let mut v: Vec<(String, u64, String)> = objs
            .into_iter()
            .map(|o| (o.key.strip_prefix(p).unwrap().to_string(), o.size, o.etag))
            .collect();
        v.sort();
        v
    };
    assert_eq!(strip(list(&a), "reg/"), strip(list(&b), "copy/"));
    assert_eq!(get(&b, "copy/foreign"), foreign);
    assert_eq!(
        typed(&client(), &b, "copy/typed"),
        typed(&client(), &a, "reg/typed")
    );

    // A rerun copies nothing, from the listings alone.
    let (out, r) = s3ferry_reported(&home, &["sync", &from, &to]);
    ok(&out);
    assert_eq!(r["objects_copied"], 0, "{r}");
    assert_eq!(r["objects_unchanged"], n, "{r}");
    assert_eq!(
        r["requests"]["total"], 1,
        "one listing of the destination: {r}"
    );

    // sync deletes what only the destination has; copy never does.
    put(&b, "copy/extra", b"not in the source");
    let (out, r) = s3ferry_reported(&home, &["copy", &from, &to]);
    ok(&out);
    assert_eq!(r["deleted"], 0, "{r}");
    let (out, r) = s3ferry_reported(&home, &["sync", &from, &to]);
    ok(&out);
    assert_eq!(r["deleted"], 1, "{r}");
    assert!(!list(&b).iter().any(|o| o.key == "copy/extra"));

    // --disable copy streams even on one endpoint, and proves every object the same way.
    let streamed = format!("harbor-s3:{b}/streamed");
    let (out, r) = s3ferry_reported(&home, &["copy", &from, &streamed, "--disable", "copy"]);
    ok(&out);
    assert_eq!(r["streamed_copies"], n, "{r}");
    assert_eq!(r["requests"]["copy"], 0, "{r}");
    let out = s3ferry(&home, &["copy", &from, &streamed, "--disable", "move"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--disable move"), "{}", stderr(&out));

    // Overlapping locations are refused before anything is done.
    let out = s3ferry(&home, &["sync", &from, &format!("harbor-s3:{a}/reg/inner")]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("overlap"), "{}", stderr(&out));
}

#[test]
fn across_two_servers_every_byte_is_streamed_proven_and_comes_back_identical() {
    let home = two_remotes();
    let a = bucket("relay-a");
    let dr = bucket_at(&client_at(&s3s_endpoint()), "relay-dr");
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path());
    let s = src.path().to_str().unwrap();
    let from = format!("harbor-s3:{a}");
    let mut args = vec!["sync", s, &from];
    args.extend(SMALL_PARTS);
    ok(&s3ferry(&home, &args));
    let single = bytes(7 * MIB + 1, 21);
    put(&a, "single-big", &single);
    put_typed(&client(), &a, "typed");
    let n = tree().len() as u64 + 2;

    // moto → s3s-fs: two endpoints, so the bytes pass through us.
    let to = format!("dr:{dr}");
    let mut args = vec!["sync", &from, &to];
    args.extend(SMALL_PARTS);
    let (out, r) = s3ferry_reported(&home, &args);
    ok(&out);
    assert_eq!(r["objects_copied"], n, "{r}");
    assert_eq!(
        r["streamed_copies"], n,
        "every copy proven against the source: {r}"
    );
    assert_eq!(r["server_side_copies"], 0, "{r}");
    assert_eq!(r["requests"]["copy"], 0, "{r}");
    // Multipart sources keep their layout: the copies' ETags are the sources'.
    let src_etags: std::collections::HashMap<String, String> =
        list(&a).into_iter().map(|o| (o.key, o.etag)).collect();
    let c = client_at(&s3s_endpoint());
    for (rel, data) in tree() {
        assert!(get_at(&c, &dr, &rel) == data, "{rel}");
        let head = rt()
            .block_on(c.head_object().bucket(&dr).key(&rel).send())
            .unwrap();
        assert_eq!(
            head.e_tag().unwrap().trim_matches('"'),
            src_etags[&rel],
            "{rel}"
        );
    }
    assert!(get_at(&c, &dr, "single-big") == single);
    let (content_type, origin) = typed(&c, &dr, "typed");
    assert_eq!(content_type, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        origin.as_deref(),
        Some("harbor"),
        "user metadata carried over"
    );

    // A rerun copies nothing.
    let (out, r) = s3ferry_reported(&home, &["sync", &from, &to]);
    ok(&out);
    assert_eq!(r["objects_copied"], 0, "{r}");
    assert_eq!(r["requests"]["get"], 0, "{r}");

    // dir → S3 → S3 → dir: byte-identical, mtimes kept.
    let back = tempfile::tempdir().unwrap();
    let d = back.path().to_str().unwrap();
    let (out, r) = s3ferry_reported(&home, &["copy", &to, d]);
    ok(&out);
    assert_eq!(r["files_restored"], n, "{r}");
    assert!(stderr(&out).contains("registry mode"), "{}", stderr(&out));
    for (rel, data) in tree() {
        let p = back.path().join(&rel);
        assert!(std::fs::read(&p).unwrap() == data, "{rel}");
        assert_eq!(
            mtime(&p),
            mtime(&src.path().join(&rel)),
            "{rel}: mtime kept"
        );
    }

    // check, in every pairing, proves the copies and finds what was changed.
    let clean = |args: &[&str]| {
        let (out, r) = s3ferry_reported(&home, args);
        let err = ok(&out);
        assert!(err.contains(" 0 differences found"), "{args:?}: {err}");
        r
    };
    let r = clean(&["check", s, &from, "--one-way"]);
    assert_eq!(r["matching"], n - 2, "{r}");
    let r = clean(&["check", &from, &to, "--one-way"]);
    assert_eq!(r["matching"], n, "{r}");
    let r = clean(&["check", &to, d, "--one-way"]);
    assert_eq!(r["matching"], n, "{r}");
    assert_eq!(
        r["requests"]["get"], 0,
        "no downloads: the ETags prove the files: {r}"
    );

    // Tampered: the same size, other bytes, in the copy and in the restored tree.
    let tampered = "a b/ü+%.txt";
    rt().block_on(
        c.put_object()
            .bucket(&dr)
            .key(tampered)
            .body(bytes(1000, 99).into())
            .send(),
    )
    .unwrap();
    let (out, r) = s3ferry_reported(&home, &["check", &from, &to, "--one-way"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 differences found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(r["hash_differ"], 1, "{r}");
    assert_eq!(r["differences"][0]["path"], tampered, "{r}");

    let tag = back.path().join(TAG_LINK);
    let other = std::fs::read(&tag)
        .unwrap()
        .iter()
        .rev()
        .copied()
        .collect::<Vec<u8>>();
    std::fs::write(&tag, other).unwrap();
    std::fs::remove_file(back.path().join("empty")).unwrap();
    write(back.path(), "only-here", b"extra");
    let (out, r) = s3ferry_reported(&home, &["check", &to, d]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    // The tampered object now differs from the untouched restored file too.
    assert_eq!(r["hash_differ"], 2, "{r}");
    assert_eq!(r["missing_on_dst"], 1, "{r}");
    assert_eq!(r["missing_on_src"], 1, "{r}");
    assert!(
        err.contains("empty: file not in Local file system"),
        "{err}"
    );
    assert!(err.contains("only-here: file not in S3 bucket"), "{err}");
    // --one-way: only what the bucket has must be in the directory.
    let (out, r) = s3ferry_reported(&home, &["check", &to, d, "--one-way"]);
    assert_eq!(code(&out), 1);
    assert_eq!(r["missing_on_src"], 0, "{r}");
    assert_eq!(r["missing_on_dst"], 1, "{r}");
}

#[test]
fn sync_into_a_directory_deletes_extra_files_only_after_a_clean_run() {
    let home = Home::new();
    let b = bucket("restore-sync");
    put(&b, "keep/a", b"aaa");
    put(&b, "keep/b", b"bbb");
    let dst = tempfile::tempdir().unwrap();
    let d = dst.path().to_str().unwrap();
    write(dst.path(), "extra/old", b"only here");
    let remote = format!("harbor-s3:{b}/keep");

    // copy adds and deletes nothing; sync deletes what the bucket does not have.
    let (out, r) = s3ferry_reported(&home, &["copy", &remote, d]);
    ok(&out);
    assert_eq!(r["deleted"], 0, "{r}");
    assert!(dst.path().join("extra/old").exists());
    let (out, r) = s3ferry_reported(&home, &["sync", &remote, d, "--dry-run"]);
    ok(&out);
    assert_eq!(r["deletes_planned"], 1, "{r}");
    assert!(
        dst.path().join("extra/old").exists(),
        "--dry-run deletes nothing"
    );
    let (out, r) = s3ferry_reported(&home, &["sync", &remote, d]);
    ok(&out);
    assert_eq!(r["deleted"], 1, "{r}");
    assert!(!dst.path().join("extra/old").exists());
    assert_eq!(std::fs::read(dst.path().join("a")).unwrap(), b"aaa");

    // A run with an error deletes nothing: a key no filesystem can hold.
    write(dst.path(), "extra/again", b"only here");
    put(&b, &format!("keep/{}", "x".repeat(300)), b"too long");
    let (out, r) = s3ferry_reported(&home, &["sync", &remote, d]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(r["deleted"], 0, "{r}");
    assert!(r["deletes_refused"].as_bool().unwrap(), "{r}");
    assert!(dst.path().join("extra/again").exists());

    // An empty source (a wrong prefix) never empties the directory without --max-delete.
    let out = s3ferry(&home, &["sync", &format!("harbor-s3:{b}/nothing-here"), d]);
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the source is empty"),
        "{}",
        stderr(&out)
    );
    assert!(dst.path().join("a").exists());
}

/// Lines of a restore's ledger (its header and one per proven part), once it has `n` parts.
fn wait_for_ledger(child: &mut std::process::Child, dir: &Path, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lines = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".s3ferry-parts"))
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .max()
            .unwrap_or(0);
        if lines > n {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore finished before it could be killed"
        );
        assert!(std::time::Instant::now() < deadline, "no parts appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restore_killed_mid_object_resumes_from_the_parts_it_had_proven() {
    let home = Home::new();
    let b = bucket("restore-kill");
    let data = bytes(40 * MIB + 3, 31);
    put_multipart(&b, "big", &data, 5 * MIB); // 9 parts
    let dst = tempfile::tempdir().unwrap();
    let d = dst.path().to_str().unwrap();
    let remote = format!("harbor-s3:{b}");
    let mut child = command(
        &home,
        &[
            "copy",
            &remote,
            d,
            "--bwlimit",
            "8M",
            "--s3-upload-concurrency",
            "1",
        ],
        &[],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    wait_for_ledger(&mut child, dst.path(), 3);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !dst.path().join("big").exists(),
        "never a partial file under the name"
    );

    let (out, r) = s3ferry_reported(&home, &["copy", &remote, d]);
    ok(&out);
    assert_eq!(r["files_restored"], 1, "{r}");
    let resumed = r["bytes_resumed"].as_u64().unwrap();
    assert!(resumed >= 3 * 5 * MIB as u64, "{r}");
    // Only the parts it did not have: fewer GETs than parts.
    assert!(r["requests"]["get"].as_u64().unwrap() <= 6, "{r}");
    assert!(std::fs::read(dst.path().join("big")).unwrap() == data);
    let left: Vec<_> = std::fs::read_dir(dst.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["big"], "partial file and ledger removed");
}

#[test]
fn a_bucket_copy_killed_midway_copies_only_what_was_missing_on_rerun() {
    let home = two_remotes();
    let a = bucket("relay-kill");
    let dr = bucket_at(&client_at(&s3s_endpoint()), "relay-kill-dr");
    let n = 12;
    for i in 0..n {
        put(&a, &format!("obj{i:02}"), &bytes(2 * MIB, 40 + i as u64));
    }
    let to = format!("dr:{dr}");
    let from = format!("harbor-s3:{a}");
    let c = client_at(&s3s_endpoint());
    let mut child = command(
        &home,
        &["sync", &from, &to, "--bwlimit", "4M", "--transfers", "2"],
        &[],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while list_at(&c, &dr).len() < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        assert!(std::time::Instant::now() < deadline, "no copies appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = list_at(&c, &dr).len() as u64;
    assert!(done < n as u64, "killed before the end");

    let (out, r) = s3ferry_reported(&home, &["sync", &from, &to]);
    ok(&out);
    assert_eq!(r["objects_copied"], n as u64 - done, "{r}");
    assert_eq!(r["objects_unchanged"], done, "{r}");
    assert_eq!(r["streamed_copies"], n as u64 - done, "{r}");
    for i in 0..n {
        assert!(get_at(&c, &dr, &format!("obj{i:02}")) == bytes(2 * MIB, 40 + i as u64));
    }
}

#[test]
fn a_registry_restore_proves_blobs_by_digest_and_writes_no_dangling_or_corrupt_file() {
    use sha2::Digest;
    let home = Home::new();
    let b = bucket("restore-registry");
    let v2 = "docker/registry/v2";
    let hex = |d: &[u8]| hex::encode(sha2::Sha256::digest(d));
    let good = bytes(3000, 51);
    let bad = bytes(3000, 52);
    let (g, x, gone) = (
        hex(&good),
        hex(b"what the key names"),
        hex(b"never uploaded"),
    );
    let blob = |d: &str| format!("{v2}/blobs/sha256/{}/{d}/data", &d[..2]);
    let link = |d: &str| format!("{v2}/repositories/lib/app/_layers/sha256/{d}/link");
    put(&b, &blob(&g), &good);
    put(&b, &blob(&x), &bad); // content does not hash to its key
    put(&b, &link(&g), format!("sha256:{g}").as_bytes());
    put(&b, &link(&gone), format!("sha256:{gone}").as_bytes()); // its blob is missing
    put(
        &b,
        &format!("{v2}/repositories/lib/app/_uploads/u1/data"),
        b"partial push",
    );

    let dst = tempfile::tempdir().unwrap();
    let d = dst.path().to_str().unwrap();
    let (out, r) = s3ferry_reported(&home, &["copy", &format!("harbor-s3:{b}"), d]);
    let err = stderr(&out);
    assert_ne!(code(&out), 0, "{err}");
    assert!(err.contains("registry mode"), "{err}");
    assert!(
        err.contains(&format!("corrupt blob: its key says sha256:{x}")),
        "{err}"
    );
    assert_eq!(r["files_restored"], 1, "only the good blob: {r}");
    assert!(dst.path().join(blob(&g)).is_file());
    assert!(
        !dst.path().join(blob(&x)).exists(),
        "a corrupt blob is not written"
    );
    // After a failure no link is written: a reader never finds a link to a missing blob.
    assert!(!dst.path().join(link(&g)).exists());
    assert!(
        !dst.path()
            .join(format!("{v2}/repositories/lib/app/_uploads"))
            .exists()
    );

    // Without the corrupt blob, the good link is restored and the dangling one refused.
    delete(&b, &blob(&x));
    let (out, r) = s3ferry_reported(&home, &["copy", &format!("harbor-s3:{b}"), d]);
    let err = stderr(&out);
    assert_ne!(code(&out), 0, "{err}");
    assert!(err.contains("not writing a dangling link"), "{err}");
    assert_eq!(r["files_restored"], 1, "{r}");
    assert!(dst.path().join(link(&g)).is_file());
    assert!(!dst.path().join(link(&gone)).exists());
}

#[test]
fn a_streamed_copy_killed_mid_object_resumes_its_upload_and_sends_only_the_missing_parts() {
    // The same server under a second set of keys: s3ferry cannot assume those keys read the
    // source, so it streams (and moto, unlike s3s-fs, lists the interrupted upload).
    let other = seed_conf()
        .replace("[harbor-s3]", "[other]")
        .replace(KEY_ID, "AKIDOTHERKEYS");
    let home = Home::with_conf(&format!("{}\n{other}", seed_conf()));
    let (a, b) = (bucket("resume-a"), bucket("resume-b"));
    let data = bytes(40 * MIB + 9, 61);
    let etag = put_multipart(&a, "blob", &data, 5 * MIB); // 9 parts
    let (from, to) = (format!("harbor-s3:{a}"), format!("other:{b}"));
    let mut child = command(
        &home,
        &[
            "copy",
            &from,
            &to,
            "--bwlimit",
            "8M",
            "--s3-upload-concurrency",
            "1",
        ],
        &[],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let sent = wait_for_parts(&mut child, &client(), &b, 3);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(list(&b).is_empty(), "no object before the copy is complete");

    let (out, r) = s3ferry_reported(&home, &["copy", &from, &to]);
    ok(&out);
    assert_eq!(r["objects_copied"], 1, "{r}");
    assert_eq!(r["streamed_copies"], 1, "proven against the source: {r}");
    let resumed = r["bytes_resumed"].as_u64().unwrap();
    assert!(resumed >= (sent * 5 * MIB) as u64, "{r}");
    assert!(
        r["requests"]["upload_part"].as_u64().unwrap() <= (9 - sent) as u64,
        "{r}"
    );
    assert_eq!(
        r["requests"]["create_multipart"], 0,
        "the upload was adopted: {r}"
    );
    assert!(get(&b, "blob") == data);
    assert_eq!(
        list(&b)[0].etag,
        etag.trim_matches('"'),
        "the source's layout and ETag"
    );
    assert!(uploads(&b).is_empty(), "nothing left behind");
}

#[test]
fn a_registry_bucket_copy_proves_blobs_and_links_and_leaves_uploads_behind() {
    use sha2::Digest;
    let home = two_remotes();
    let a = bucket("mirror-registry");
    let dr = bucket_at(&client_at(&s3s_endpoint()), "mirror-registry-dr");
    let v2 = "docker/registry/v2";
    let hex = |d: &[u8]| hex::encode(sha2::Sha256::digest(d));
    let good = bytes(3000, 71);
    let big = bytes(11 * MIB + 5, 72); // multipart at 5 MiB parts
    let (g, bg, x, gone) = (
        hex(&good),
        hex(&big),
        hex(b"what the key names"),
        hex(b"never uploaded"),
    );
    let blob = |d: &str| format!("{v2}/blobs/sha256/{}/{d}/data", &d[..2]);
    let link = |d: &str| format!("{v2}/repositories/lib/app/_layers/sha256/{d}/link");
    put(&a, &blob(&g), &good);
    put_multipart(&a, &blob(&bg), &big, 5 * MIB);
    put(&a, &blob(&x), &bytes(3000, 73)); // content does not hash to its key
    put(&a, &link(&g), format!("sha256:{g}").as_bytes());
    put(&a, &link(&bg), format!("sha256:{bg}").as_bytes());
    put(&a, &link(&gone), format!("sha256:{gone}").as_bytes());
    put(
        &a,
        &format!("{v2}/repositories/lib/app/_uploads/u1/data"),
        b"partial push",
    );
    let (from, to) = (format!("harbor-s3:{a}"), format!("dr:{dr}"));

    let (out, r) = s3ferry_reported(&home, &["copy", &from, &to]);
    let err = stderr(&out);
    assert_ne!(code(&out), 0, "{err}");
    assert!(
        err.contains(&format!("corrupt blob: its key says sha256:{x}")),
        "{err}"
    );
    assert_eq!(
        r["objects_copied"], 2,
        "the two good blobs, no link after a failure: {r}"
    );
    let keys: Vec<String> = list_at(&client_at(&s3s_endpoint()), &dr)
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("_uploads") || k.ends_with("/link"))
    );

    // Without the corrupt blob: the good links follow, the dangling one is refused.
    delete(&a, &blob(&x));
    let (out, r) = s3ferry_reported(&home, &["copy", &from, &to]);
    let err = stderr(&out);
    assert_ne!(code(&out), 0, "{err}");
    assert!(err.contains("not copying a dangling link"), "{err}");
    assert_eq!(r["objects_copied"], 2, "{r}");
    let c = client_at(&s3s_endpoint());
    assert!(get_at(&c, &dr, &link(&bg)) == format!("sha256:{bg}").as_bytes());
    assert!(get_at(&c, &dr, &blob(&bg)) == big);
}

#[test]
fn max_transfer_and_max_duration_stop_restores_and_bucket_copies_and_a_rerun_goes_on() {
    let home = two_remotes();
    let b = bucket("cutoff");
    let data = bytes(30 * MIB + 1, 81);
    put_multipart(&b, "big", &data, 5 * MIB);
    for i in 0..4 {
        put(&b, &format!("small{i}"), &bytes(1000, 90 + i));
    }
    let remote = format!("harbor-s3:{b}");

    // A restore stopped at --max-transfer (hard): exit 8, nothing under the name, extra local
    // files kept (no deletes after a cutoff); the rerun resumes what was proven.
    let dst = tempfile::tempdir().unwrap();
    let d = dst.path().to_str().unwrap();
    write(dst.path(), "extra", b"kept");
    let (out, r) = s3ferry_reported(
        &home,
        &[
            "sync",
            &remote,
            d,
            "--max-transfer",
            "12M",
            "--cutoff-mode",
            "hard",
            "--bwlimit",
            "8M",
            "--s3-upload-concurrency",
            "1",
            "--transfers",
            "1",
        ],
    );
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stopped at --max-transfer"),
        "{}",
        stderr(&out)
    );
    assert!(r["transfer_exceeded"].as_bool().unwrap(), "{r}");
    assert!(!dst.path().join("big").exists());
    assert!(
        dst.path().join("extra").exists(),
        "nothing deleted after a cutoff"
    );
    let (out, r) = s3ferry_reported(&home, &["sync", &remote, d]);
    ok(&out);
    assert!(
        r["bytes_resumed"].as_u64().unwrap() >= 5 * MIB as u64,
        "{r}"
    );
    assert!(std::fs::read(dst.path().join("big")).unwrap() == data);
    assert!(!dst.path().join("extra").exists());

    // A bucket copy stopped at --max-duration: exit 10, the rerun copies the rest.
    let dr = bucket_at(&client_at(&s3s_endpoint()), "cutoff-dr");
    let to = format!("dr:{dr}");
    let (out, r) = s3ferry_reported(
        &home,
        &[
            "sync",
            &remote,
            &to,
            "--max-duration",
            "1s",
            "--bwlimit",
            "4M",
            "--transfers",
            "1",
        ],
    );
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(r["duration_exceeded"].as_bool().unwrap(), "{r}");
    let copied = r["objects_copied"].as_u64().unwrap();
    assert!(copied < 5, "{r}");
    let (out, r) = s3ferry_reported(&home, &["sync", &remote, &to]);
    ok(&out);
    assert_eq!(r["objects_copied"].as_u64().unwrap() + copied, 5, "{r}");
    assert!(get_at(&client_at(&s3s_endpoint()), &dr, "big") == data);
}
