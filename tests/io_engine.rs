//! Both I/O engines read the same bytes: a tree synced with io_uring and with pread gives the
//! same objects, and `auto` falls back to pread when a seccomp filter blocks io_uring, as the
//! default profiles of Docker ≥ 25, containerd ≥ 2 and CRI-O do.

mod support;

use support::*;

/// Small files of many sizes (0 and 71 bytes among them) and one multipart file.
fn tree(root: &std::path::Path) {
    for i in 0..200usize {
        let size = [0, 1, 71, 4096, 70_000][i % 5] + i;
        make_old(&write(
            root,
            &format!("d{}/f{i:03}", i % 7),
            &bytes(size, i as u64),
        ));
    }
    make_old(&write(root, "big.bin", &bytes(12 << 20, 99)));
}

fn objects(b: &str) -> Vec<(String, u64, String)> {
    list(b)
        .into_iter()
        .map(|o| (o.key, o.size, o.etag))
        .collect()
}

/// Whether io_uring works on this machine (outside any filter of ours).
fn uring_available(home: &Home) -> bool {
    let src = tempfile::tempdir().unwrap();
    make_old(&write(src.path(), "probe", b"x"));
    let b = bucket("engine-probe");
    let (c, err, r) = sync_report(
        home,
        src.path().to_str().unwrap(),
        &format!("harbor-s3:{b}"),
        &[],
        false,
    );
    assert_eq!(c, 0, "{err}");
    let available = r["io_engine"] == "io_uring";
    if !available {
        eprintln!(
            "io_uring is not available on this machine ({}): only pread is exercised",
            r["io_engine_reason"]
        );
    }
    available
}

fn sync_report(
    home: &Home,
    src: &str,
    dst: &str,
    extra: &[&str],
    blocked: bool,
) -> (i32, String, serde_json::Value) {
    let rep = home
        .path()
        .join(format!("r{}.json", dst.len() + extra.len()));
    let mut args = vec!["sync", src, dst, "-v", "--report", rep.to_str().unwrap()];
    args.extend(SMALL_PARTS);
    args.extend(extra);
    let mut cmd = command(home, &args, &[]);
    if blocked {
        block_io_uring(&mut cmd);
    }
    let out = cmd.output().expect("run s3ferry");
    let r = if rep.exists() {
        report(&rep)
    } else {
        serde_json::Value::Null
    };
    (code(&out), stderr(&out), r)
}

#[test]
fn uring_and_pread_upload_identical_objects() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let s = src.path().to_str().unwrap();
    let (b1, b2) = (bucket("engine-uring"), bucket("engine-pread"));
    if !uring_available(&home) {
        return;
    }
    let (c, err, r) = sync_report(
        &home,
        s,
        &format!("harbor-s3:{b1}"),
        &["--io-engine", "uring"],
        false,
    );
    assert_eq!(c, 0, "{err}");
    assert_eq!(r["io_engine"], "io_uring", "{r}");
    assert!(err.contains("reading with io_uring"), "{err}");
    let (c, err, r) = sync_report(
        &home,
        s,
        &format!("harbor-s3:{b2}"),
        &["--io-engine", "pread"],
        false,
    );
    assert_eq!(c, 0, "{err}");
    assert_eq!(r["io_engine"], "pread", "{r}");
    let (o1, o2) = (objects(&b1), objects(&b2));
    assert_eq!(o1.len(), 201);
    assert_eq!(o1, o2, "same keys, sizes and ETags from both engines");
    assert!(
        o1.iter()
            .any(|(k, _, e)| k == "big.bin" && e.ends_with("-3")),
        "{o1:?}"
    );
    for dst in [&b1, &b2] {
        let err = ok(&s3ferry(
            &home,
            &["check", s, &format!("harbor-s3:{dst}"), "--one-way"],
        ));
        assert!(err.contains("0 differences found"), "{err}");
    }
}

#[test]
fn auto_falls_back_to_pread_when_seccomp_blocks_io_uring() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let s = src.path().to_str().unwrap();
    let (b1, b2) = (bucket("engine-auto"), bucket("engine-blocked"));
    let (c, err, r) = sync_report(&home, s, &format!("harbor-s3:{b1}"), &[], false);
    assert_eq!(c, 0, "{err}");
    assert_eq!(
        r["io_engine"], "io_uring",
        "auto uses io_uring where it works: {r}"
    );

    let (c, err, r) = sync_report(&home, s, &format!("harbor-s3:{b2}"), &[], true);
    assert_eq!(c, 0, "{err}");
    assert_eq!(r["io_engine"], "pread", "{r}");
    let why = r["io_engine_reason"].as_str().unwrap();
    assert!(why.contains("io_uring_setup"), "{why}");
    assert!(
        err.contains("reading with pread: io_uring unavailable"),
        "{err}"
    );
    assert_eq!(objects(&b1), objects(&b2), "identical results");

    // Asking for io_uring where it is blocked is a usage error that names the fix.
    let (c, err, _) = sync_report(
        &home,
        s,
        &format!("harbor-s3:{b2}"),
        &["--io-engine", "uring"],
        true,
    );
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("use --io-engine auto or pread"), "{err}");
}
