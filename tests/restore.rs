//! End-to-end tests of restores (`copy REMOTE:BUCKET[/P] DIR`) against a real S3 server (moto)
//! on 127.0.0.1: a directory uploaded by s3ferry comes back byte-identical with its mtimes,
//! objects other tools wrote (single PUTs, multipart without our metadata) are proven too, a
//! rerun fetches nothing, and keys no filesystem can hold are errors naming the key.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use support::*;

const MIB: usize = 1 << 20;

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// Every regular file under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_directory_comes_back_byte_identical_with_its_mtimes_and_a_rerun_fetches_nothing() {
    let home = Home::new();
    let b = bucket("restore");
    let src = tempfile::tempdir().unwrap();
    let tree: Vec<(&str, Vec<u8>)> = vec![
        ("layers/ab/abcd/data", bytes(23 * MIB + 7, 1)),
        ("layers/cd/cdef/data", bytes(5 * MIB, 2)),
        ("tags/v1/current/link", b"sha256:abcd".to_vec()),
        ("empty", Vec::new()),
        ("a b/ü.txt", bytes(1000, 3)),
    ];
    for (i, (rel, data)) in tree.iter().enumerate() {
        let p = write(src.path(), rel, data);
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000 + i as u64, 123_456_789);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    let s = src.path().to_str().unwrap();
    let remote = format!("harbor-s3:{b}/reg");
    let mut args = vec!["sync", s, &remote];
    args.extend(SMALL_PARTS);
    ok(&s3ferry(&home, &args));

    // Restore into a directory that does not exist yet.
    let dst = tempfile::tempdir().unwrap();
    let into = dst.path().join("restored");
    let d = into.to_str().unwrap();
    let (out, r) = s3ferry_reported(&home, &["copy", &remote, d, "--s3-chunk-size", "5Mi"]);
    ok(&out);
    assert_eq!(r["files_restored"], tree.len() as u64, "{r}");
    assert_eq!(r["hash_not_comparable"], 0, "{r}");
    // One HEAD per multipart object (its part layout), none for the others.
    let multipart = list(&b).iter().filter(|o| o.etag.contains('-')).count();
    assert_eq!(multipart, 2, "the 23 MiB and the 5 MiB file");
    assert_eq!(r["requests"]["head"], multipart as u64, "{r}");
    assert_eq!(
        r["errors_temporary"].as_u64().unwrap() + r["errors_permanent"].as_u64().unwrap(),
        0
    );
    let mut want: Vec<String> = tree.iter().map(|(rel, _)| rel.to_string()).collect();
    want.sort();
    assert_eq!(
        files(&into),
        want,
        "exactly the tree, no partial files left"
    );
    for (rel, data) in &tree {
        let p = into.join(rel);
        assert!(std::fs::read(&p).unwrap() == *data, "{rel}");
        assert_eq!(mtime(&p), mtime(&src.path().join(rel)), "{rel}: mtime kept");
    }

    // A rerun fetches no object body.
    let (out, r) = s3ferry_reported(&home, &["copy", &remote, d]);
    ok(&out);
    assert_eq!(r["files_restored"], 0, "{r}");
    assert_eq!(r["files_unchanged"], tree.len() as u64, "{r}");
    assert_eq!(r["requests"]["get"], 0, "{r}");

    // A file changed locally (same size, another mtime) is restored again; only it.
    let changed = into.join("a b/ü.txt");
    std::fs::write(&changed, bytes(1000, 99)).unwrap();
    let (out, r) = s3ferry_reported(&home, &["copy", &remote, d]);
    ok(&out);
    assert_eq!(r["files_restored"], 1, "{r}");
    assert_eq!(std::fs::read(&changed).unwrap(), tree[4].1);

    // The restored tree uploads back as unchanged: the round trip kept sizes and mtimes.
    let (out, r) = s3ferry_reported(&home, &["sync", d, &remote]);
    ok(&out);
    assert_eq!(r["files_uploaded"], 0, "{r}");
}

#[test]
fn objects_other_tools_wrote_are_proven_and_bad_keys_are_errors_naming_the_key() {
    let home = Home::new();
    let b = bucket("restore-foreign");
    let single = bytes(7 * MIB + 3, 11);
    let multi = bytes(17 * MIB + 5, 12);
    put(&b, "single", &single);
    // Multipart in 8 MiB parts, with none of our metadata: the part size comes from part 1.
    put_multipart(&b, "multi", &multi, 8 * MIB);
    // Folder markers are not files: the listing leaves them out.
    put(&b, "folder/", b"");
    put(&b, "a/../escape", b"x");
    put(&b, &format!("n/{}", "x".repeat(300)), b"too long");

    let dst = tempfile::tempdir().unwrap();
    let d = dst.path().to_str().unwrap();
    let (out, r) = s3ferry_reported(&home, &["copy", &format!("harbor-s3:{b}"), d]);
    let err = stderr(&out);
    assert_ne!(code(&out), 0, "bad keys fail the run:\n{err}");
    assert_eq!(r["files_restored"], 2, "{r}");
    assert_eq!(r["hash_not_comparable"], 0, "{r}");
    assert_eq!(r["errors_permanent"], 2, "{r}");
    assert!(err.contains("\"a/../escape\""), "{err}");
    assert!(err.contains("more than the 255"), "{err}");
    assert_eq!(std::fs::read(dst.path().join("single")).unwrap(), single);
    assert_eq!(std::fs::read(dst.path().join("multi")).unwrap(), multi);
    assert!(
        !dst.path().join("escape").exists()
            && !dst.path().parent().unwrap().join("escape").exists()
    );
    assert_eq!(files(dst.path()), ["multi", "single"]);
}

#[test]
fn a_destination_that_is_a_file_or_inside_the_source_is_refused_with_a_usage_error() {
    let home = Home::new();
    let b = bucket("restore-refused");
    put(&b, "f", b"x");
    let dst = tempfile::tempdir().unwrap();
    let file = write(dst.path(), "a-file", b"not a directory");
    let src = format!("harbor-s3:{b}");
    let out = s3ferry(&home, &["copy", &src, file.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
    // A bucket copy into its own prefix would copy onto (and sync would delete from) itself.
    let out = s3ferry(&home, &["sync", &src, &format!("harbor-s3:{b}/copy")]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("overlap"), "{}", stderr(&out));
    assert_eq!(list(&b).len(), 1, "nothing written");
}

/// A restore never writes outside its directory through a symlink, wherever the symlink sits:
/// on a directory of a key's path, at the hidden name of a download in progress, or at the
/// key's own name. Each is one error naming the symlink (exit 6), nothing outside changes,
/// and the rest of the restore goes on. A bucket holding both `a` and `a/b` gets one error
/// naming the way out. A symlink no object needs is left alone, and `sync` deletes around it.
#[test]
fn a_restore_never_writes_through_a_symlink() {
    use std::os::unix::fs::symlink;
    let home = Home::new();
    let b = bucket("restore-symlinks");
    for (key, data) in [
        ("link/passwd", &b"evil"[..]),
        ("ok/a.txt", b"object a"),
        ("plain", b"object plain"),
        ("fine.txt", b"fine"),
        ("dup", b"a file"),
        ("dup/inner", b"under it"),
    ] {
        put(&b, key, data);
    }
    let outside = tempfile::tempdir().unwrap();
    let victim = write(outside.path(), "victim", b"precious");
    let dst = tempfile::tempdir().unwrap();
    symlink(outside.path(), dst.path().join("link")).unwrap();
    std::fs::create_dir(dst.path().join("ok")).unwrap();
    symlink(&victim, dst.path().join("ok/.a.txt.s3ferry-partial")).unwrap();
    symlink(&victim, dst.path().join("plain")).unwrap();
    symlink(&victim, dst.path().join("stray")).unwrap();
    let d = dst.path().to_str().unwrap();
    let src = format!("harbor-s3:{b}");

    let (out, r) = s3ferry_reported(&home, &["copy", &src, d]);
    let err = stderr(&out);
    assert_eq!(code(&out), 6, "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let mut left: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["victim"], "nothing written outside");
    for shown in [
        "/link: is a symlink",
        "/ok/.a.txt.s3ferry-partial: is a symlink",
        "/plain: is a symlink",
    ] {
        assert!(err.contains(shown), "{shown}: {err}");
    }
    assert!(err.contains("\"dup") && err.contains("--exclude"), "{err}");
    assert!(
        err.contains("stray: a symlink in the destination: left alone"),
        "{err}"
    );
    assert!(!err.contains("--copy-links"), "{err}");
    assert_eq!(r["errors_permanent"], 4, "{r}");
    assert_eq!(std::fs::read(dst.path().join("fine.txt")).unwrap(), b"fine");
    for link in ["link", "plain", "stray", "ok/.a.txt.s3ferry-partial"] {
        assert!(
            std::fs::symlink_metadata(dst.path().join(link))
                .unwrap()
                .is_symlink(),
            "{link} left as it was"
        );
    }

    // sync with nothing in the way: the extra file goes, the stray symlink and its target stay.
    let clean = bucket("restore-symlinks-sync");
    put(&clean, "fine.txt", b"fine");
    let dst2 = tempfile::tempdir().unwrap();
    write(dst2.path(), "extra.txt", b"extra");
    symlink(&victim, dst2.path().join("stray")).unwrap();
    let err = ok(&s3ferry(
        &home,
        &[
            "sync",
            &format!("harbor-s3:{clean}"),
            dst2.path().to_str().unwrap(),
        ],
    ));
    assert!(!dst2.path().join("extra.txt").exists(), "{err}");
    assert!(
        std::fs::symlink_metadata(dst2.path().join("stray"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}
