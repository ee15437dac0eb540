//! The core paths against a second, independent S3 implementation (s3s-fs), which also lacks
//! ListMultipartUploads and part ETags: sync, check, a rerun that sends nothing, and a rerun
//! after kill -9 that must fall back to a fresh upload and still converge.

mod support;

use std::time::Duration;

use support::*;

const MIB: usize = 1 << 20;

fn setup(tag: &str) -> (Home, String, String) {
    let ep = format!("http://127.0.0.1:{}", s3s_fs().port);
    let home = Home::with_conf(&conf_for(&ep));
    let b = format!("s3s-{tag}-{}", std::process::id());
    let c = client_at(&ep);
    rt().block_on(async { c.create_bucket().bucket(&b).send().await.unwrap() });
    (home, b, ep)
}

#[test]
fn sync_check_and_rerun_on_s3s_fs() {
    let (home, b, _) = setup("tree");
    let src = tempfile::tempdir().unwrap();
    for (rel, data) in [
        ("empty", Vec::new()),
        ("dir/names with space+plus%#.txt", b"odd".to_vec()),
        ("blobs/big/data", bytes(11 * MIB + 5, 1)),
        ("blobs/at-cutoff/data", bytes(5 * MIB, 2)),
    ] {
        make_old(&write(src.path(), rel, &data));
    }
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let mut args = vec!["sync", s, &dst];
    args.extend(SMALL_PARTS);
    next_second();
    ok(&s3ferry(&home, &args));
    // s3s-fs lists objects without ETags: check asks for each with a HEAD, never a download.
    let (out, r) = s3ferry_reported(&home, &["check", s, &dst, "--one-way"]);
    let err = ok(&out);
    assert!(
        err.contains("0 differences found") && err.contains("4 matching files"),
        "{err}"
    );
    assert_eq!(r["requests"]["get"], 0, "{r}");
    assert_eq!(r["requests"]["head"], 4, "{r}");
    let rep = home.path().join("r.json");
    let mut args = vec!["sync", s, &dst, "--report", rep.to_str().unwrap()];
    args.extend(SMALL_PARTS);
    ok(&s3ferry(&home, &args));
    let r = report(&rep);
    // The listing, and the look for leftover uploads (which s3s-fs cannot list).
    assert_eq!(r["requests"]["total"], 2, "{r}");
    assert_eq!(r["requests"]["list_uploads"], 1, "{r}");

    // The HEAD's ETag is a real proof: an object of the right size with other bytes differs.
    let c = client_at(&format!("http://127.0.0.1:{}", s3s_fs().port));
    rt().block_on(async {
        let body = aws_sdk_s3::primitives::ByteStream::from(b"0dd".to_vec());
        let key = "dir/names with space+plus%#.txt";
        c.put_object()
            .bucket(&b)
            .key(key)
            .body(body)
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
}

#[test]
fn kill_then_rerun_without_list_uploads_restarts_and_converges() {
    let (home, b, ep) = setup("kill");
    let src = tempfile::tempdir().unwrap();
    let data = bytes(100 * MIB, 3);
    make_old(&write(src.path(), "blob", &data));
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
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
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    child.wait().unwrap();
    let rep = home.path().join("r.json");
    let mut args = vec!["sync", s, &dst, "--report", rep.to_str().unwrap()];
    args.extend(SMALL_PARTS);
    ok(&s3ferry(&home, &args));
    let c = client_at(&ep);
    let got = rt().block_on(async {
        let o = c.get_object().bucket(&b).key("blob").send().await.unwrap();
        o.body.collect().await.unwrap().into_bytes().to_vec()
    });
    assert!(got == data, "object content differs after the rerun");
    let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
    assert!(err.contains("0 differences found"), "{err}");
}
