//! s3ferry as a drop-in for rclone and the AWS CLI: each family of flags a tuned Job uses runs
//! against moto, and what it skipped, filtered, deleted or refused is asserted on the bucket.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn keys(b: &str) -> Vec<String> {
    let mut k: Vec<String> = list(b).into_iter().map(|o| o.key).collect();
    k.sort();
    k
}

fn run(home: &Home, args: &[&str]) -> std::process::Output {
    s3ferry_bounded(home, args, &[], Duration::from_secs(120))
}

#[test]
fn filter_rules_files_and_size_limits_select_and_protect() {
    let b = bucket("filters");
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "keep/a.bin", &bytes(2000, 1));
    write_old(src.path(), "keep/big.bin", &bytes(300 * 1024, 2));
    write_old(src.path(), "keep/tiny.bin", b"x");
    write_old(src.path(), "keep/_uploads/u/data", b"partial");
    write_old(src.path(), "skip/b.bin", &bytes(2000, 3));
    // An object outside what the filters select: never deleted by a filtered sync.
    put(&b, "skip/old.bin", b"stays");
    let home = Home::new();
    let rules = home.path().join("rules.txt");
    std::fs::write(
        &rules,
        "# what to move\n- **/_uploads/**\n+ /keep/**\n- *\n",
    )
    .unwrap();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let flags = [
        "--filter-from",
        rules.to_str().unwrap(),
        "--min-size",
        "1k",
        "--max-size",
        "200k",
    ];
    let args = [&["sync", s, &dst][..], &flags].concat();
    ok(&run(&home, &args));
    assert_eq!(keys(&b), ["keep/a.bin", "skip/old.bin"]);
    let args = [&["check", s, &dst][..], &flags].concat();
    let err = ok(&run(&home, &args));
    assert!(err.contains("0 differences found"), "{err}");

    // --include-from / --exclude-from, and the age limits.
    let b2 = bucket("filters2");
    let inc = home.path().join("inc.txt");
    std::fs::write(&inc, "*.bin\n").unwrap();
    let exc = home.path().join("exc.txt");
    std::fs::write(&exc, "; comment\nbig.bin\n").unwrap();
    let fresh = write(src.path(), "keep/fresh.bin", b"new file");
    let _ = fresh;
    let dst2 = format!("harbor-s3:{b2}");
    ok(&run(
        &home,
        &[
            "copy",
            s,
            &dst2,
            "--include-from",
            inc.to_str().unwrap(),
            "--exclude-from",
            exc.to_str().unwrap(),
            "--min-age",
            "10m",
        ],
    ));
    // Includes are tried first (rclone's order): big.bin matches *.bin before the exclude.
    assert_eq!(
        keys(&b2),
        ["keep/a.bin", "keep/big.bin", "keep/tiny.bin", "skip/b.bin"]
    );
    let b3 = bucket("filters3");
    let dst3 = format!("harbor-s3:{b3}");
    ok(&run(&home, &["copy", s, &dst3, "--max-age", "10m"]));
    assert_eq!(
        keys(&b3),
        ["keep/fresh.bin"],
        "only the file written just now"
    );
}

#[test]
fn ignore_existing_and_update_skip_what_rclone_skips() {
    let b = bucket("skips");
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "same-name.bin", b"the source's bytes");
    put(&b, "same-name.bin", b"another version");
    let home = Home::new();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let (out, r) = s3ferry_reported(&home, &["sync", s, &dst, "--ignore-existing"]);
    ok(&out);
    assert_eq!(r["files_uploaded"], 0, "{r}");
    assert_eq!(get(&b, "same-name.bin"), b"another version");
    // --update: the object is newer than the (hour-old) file: kept although sizes differ.
    let (out, r) = s3ferry_reported(&home, &["sync", s, &dst, "--update"]);
    ok(&out);
    assert_eq!(r["files_uploaded"], 0, "{r}");
    // A file newer than its object is uploaded.
    std::thread::sleep(Duration::from_millis(1100));
    write(src.path(), "same-name.bin", b"edited after the upload");
    let (out, r) = s3ferry_reported(&home, &["sync", s, &dst, "-u"]);
    ok(&out);
    assert_eq!(r["files_uploaded"], 1, "{r}");
    assert_eq!(get(&b, "same-name.bin"), b"edited after the upload");
}

#[test]
fn flags_without_effect_are_accepted_and_weakening_ones_refused() {
    let b = bucket("compat");
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "f", b"x");
    let home = Home::new();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let err = ok(&run(
        &home,
        &[
            "sync",
            s,
            &dst,
            "-v",
            "--fast-list",
            "--buffer-size",
            "16M",
            "--use-mmap",
            "--multi-thread-streams",
            "4",
            "--delete-after",
            "--retries-sleep",
            "1s",
            "--track-renames",
        ],
    ));
    for flag in [
        "--fast-list",
        "--buffer-size",
        "--use-mmap",
        "--multi-thread-streams",
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains("INFO") && l.contains(flag) && l.contains("no effect")),
            "{flag}: {err}"
        );
    }
    for (flag, why) in [
        ("--ignore-errors", "deletes after errors"),
        ("--delete-before", "--delete-after"),
        ("--delete-during", "--delete-after"),
        ("--s3-disable-checksum", "MD5"),
    ] {
        let out = run(&home, &["sync", s, &dst, flag]);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{flag}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(flag) && err.contains(why), "{err}");
    }
    for (args, want) in [
        (
            &["--backup-dir", "x"][..],
            "rclone's --backup-dir does not apply to s3ferry",
        ),
        (&["--transfer", "4"][..], "did you mean --transfers"),
        (&["--no-such-thing"][..], "unknown flag --no-such-thing"),
    ] {
        let out = run(&home, &[&["sync", s, &dst][..], args].concat());
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn log_file_and_stats_flags() {
    let b = bucket("logs");
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "a.bin", &bytes(3 << 20, 4));
    let home = Home::new();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let log = home.path().join("s3ferry.log");
    // A 3 MiB upload at 2 MiB/s takes over a second: progress lines at 300 ms.
    let out = run(
        &home,
        &[
            "sync",
            s,
            &dst,
            "--log-file",
            log.to_str().unwrap(),
            "-v",
            "--bwlimit",
            "2M",
            "--stats",
            "300ms",
            "--stats-one-line",
            "--stats-log-level",
            "INFO",
        ],
    );
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).is_empty(),
        "the log goes to the file: {}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let stats: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Transferred:") && !l.contains("uploaded"))
        .collect();
    assert!(!stats.is_empty(), "{text}");
    for l in &stats {
        assert!(l.contains("INFO"), "at the chosen level: {l}");
        assert!(!l.contains("in flight"), "one short line: {l}");
    }
}

#[test]
fn bwlimit_holds_the_rate_over_all_transfers() {
    let b = bucket("bw");
    let src = tempfile::tempdir().unwrap();
    for i in 0..3 {
        write_old(src.path(), &format!("f{i}.bin"), &bytes(4 << 20, 10 + i));
    }
    let home = Home::new();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    // 12 MiB at 2 MiB/s over three parallel transfers: 6 s.
    let start = Instant::now();
    ok(&run(&home, &["sync", s, &dst, "--bwlimit", "2M:off"]));
    let took = start.elapsed().as_secs_f64();
    assert!(
        (5.4..9.0).contains(&took),
        "12 MiB at 2 MiB/s took {took:.2} s"
    );
    // Unlimited, the same takes a fraction of that.
    let b2 = bucket("bw2");
    let start = Instant::now();
    ok(&run(&home, &["sync", s, &format!("harbor-s3:{b2}")]));
    assert!(start.elapsed().as_secs_f64() < took / 2.0);
}

#[test]
fn max_transfer_and_max_duration_stop_the_run_with_rclones_codes() {
    let b = bucket("cutoff");
    let src = tempfile::tempdir().unwrap();
    for i in 0..4 {
        write_old(src.path(), &format!("f{i}.bin"), &bytes(1 << 20, 20 + i));
    }
    put(&b, "extra.bin", b"not deleted by a cut-off run");
    let home = Home::new();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let out = run(
        &home,
        &[
            "sync",
            s,
            &dst,
            "--max-transfer",
            "2M",
            "--cutoff-mode",
            "cautious",
            "--transfers",
            "1",
        ],
    );
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert_eq!(
        keys(&b),
        ["extra.bin", "f0.bin", "f1.bin"],
        "two files fit in 2 MiB"
    );
    // --max-duration: 4 MiB at 1 MiB/s cannot finish in 1 s.
    let b2 = bucket("cutoff2");
    let start = Instant::now();
    let out = run(
        &home,
        &[
            "sync",
            s,
            &format!("harbor-s3:{b2}"),
            "--max-duration",
            "1s",
            "--bwlimit",
            "1M",
        ],
    );
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "HARD stops at once"
    );
    // A rerun without limits finishes the job.
    ok(&run(&home, &["sync", s, &dst]));
    assert_eq!(keys(&b), ["f0.bin", "f1.bin", "f2.bin", "f3.bin"]);
}

#[test]
fn s3_flags_env_and_on_the_fly_remotes_need_no_config_file() {
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "a.txt", b"on the fly");
    let s = src.path().to_str().unwrap();
    let home = Home::with_conf("");
    let ep = endpoint();
    // Everything in the connection string.
    let b = bucket("otf");
    let dst = format!(
        ":s3,provider=Minio,endpoint='{ep}',access_key_id={KEY_ID},secret_access_key={SECRET}:{b}/p"
    );
    ok(&run(&home, &["sync", s, &dst]));
    assert_eq!(keys(&b), ["p/a.txt"]);
    let err = ok(&run(&home, &["check", s, &dst, "--one-way"]));
    assert!(err.contains("0 differences found"), "{err}");
    // `:s3:` with --s3-* flags and RCLONE_S3_* variables.
    let b = bucket("otf2");
    let env = [
        ("RCLONE_S3_ACCESS_KEY_ID", KEY_ID),
        ("RCLONE_S3_SECRET_ACCESS_KEY", SECRET),
    ];
    let out = s3ferry_bounded(
        &home,
        &[
            "sync",
            s,
            &format!(":s3:{b}"),
            "--s3-provider",
            "Minio",
            "--s3-endpoint",
            &ep,
        ],
        &env,
        Duration::from_secs(60),
    );
    ok(&out);
    assert_eq!(keys(&b), ["a.txt"]);
    // A flag overrides the config file; a connection-string parameter overrides the flag.
    let b = bucket("precedence");
    let home = Home::with_conf(&conf_for("http://127.0.0.1:9"));
    ok(&run(
        &home,
        &["sync", s, &format!("harbor-s3:{b}"), "--s3-endpoint", &ep],
    ));
    assert_eq!(keys(&b), ["a.txt"]);
    let out = run(
        &home,
        &[
            "sync",
            s,
            &format!("harbor-s3,endpoint='http://127.0.0.1:9':{b}"),
            "--s3-endpoint",
            &ep,
            "--contimeout",
            "1s",
            "--low-level-retries",
            "1",
        ],
    );
    assert_eq!(
        code(&out),
        5,
        "the parameter's dead endpoint wins: {}",
        stderr(&out)
    );
    // Unknown keys in a connection string are errors, like the file's.
    let out = run(&home, &["sync", s, &format!(":s3,bogus=1:{b}")]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("on-the-fly parameter"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_aws_cli_habit_from_inside_the_source_directory() {
    let b = bucket("awscli");
    let src = tempfile::tempdir().unwrap();
    write_old(src.path(), "docker/registry/v2/blobs/x", b"blob");
    write_old(src.path(), "docker/tmp.tmp", b"temp");
    write_old(src.path(), "other/file", b"other");
    put(&b, "docker/stale-object", b"only in the bucket");
    let home = Home::with_conf("");
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!("[migrate]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        "[profile migrate]\nregion = us-east-1\n",
    )
    .unwrap();
    let ep = endpoint();
    let dst = format!("s3://{b}/");
    let in_src = |args: &[&str]| {
        let mut cmd = command(&home, args, &[]);
        cmd.current_dir(src.path());
        cmd.output().unwrap()
    };
    // The AWS CLI's filters: all included, later rules win, `*` crosses `/`.
    let aws_args = [
        "sync",
        ".",
        &dst,
        "--endpoint-url",
        &ep,
        "--profile",
        "migrate",
        "--exclude",
        "*",
        "--include",
        "docker/*",
        "--exclude",
        "*.tmp",
    ];
    let out = in_src(&[&aws_args[..], &["--dryrun"]].concat());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        keys(&b),
        ["docker/stale-object"],
        "--dryrun changed nothing"
    );
    let out = in_src(&aws_args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        keys(&b),
        ["docker/registry/v2/blobs/x", "docker/stale-object"],
        "no delete without --delete, as aws s3 sync"
    );
    let out = in_src(&[&aws_args[..], &["--delete", "--size-only"]].concat());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(keys(&b), ["docker/registry/v2/blobs/x"]);
}
