//! The command line as an rclone Job uses it: arguments, config discovery, environment
//! overrides, exit codes and what is (never) printed. Against moto on 127.0.0.1.

mod support;

use support::*;

#[test]
fn seed_job_arguments_work_unchanged() {
    // The Job's config lives at $HOME/.config/rclone/rclone.conf; its args are exactly these.
    let home = Home::new();
    let b = "harbor";
    let c = client();
    rt().block_on(async { c.create_bucket().bucket(b).send().await.ok() });
    let data = tempfile::tempdir().unwrap();
    write(
        data.path(),
        "docker/registry/v2/blobs/sha256/ab/abcd/data",
        b"blob",
    );
    let d = data.path().to_str().unwrap();
    let out = s3ferry(&home, &["sync", d, "harbor-s3:harbor", "--progress"]);
    ok(&out);
    let out = s3ferry(
        &home,
        &["check", d, "harbor-s3:harbor", "--one-way", "--progress"],
    );
    let err = ok(&out);
    assert!(err.contains("0 differences found"), "{err}");
    assert_eq!(
        get(b, "docker/registry/v2/blobs/sha256/ab/abcd/data"),
        b"blob"
    );
}

#[test]
fn keys_from_the_environment_override_the_config_and_never_print() {
    // The ConfigMap holds no keys; the Secret provides them as RCLONE_CONFIG_<REMOTE>_* env.
    let conf = format!(
        "[harbor-s3]\ntype = s3\nprovider = Minio\nenv_auth = false\nendpoint = {}\n",
        endpoint()
    );
    let home = Home::with_conf(&conf);
    let b = bucket("env");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "f", b"x");
    let dst = format!("harbor-s3:{b}");
    let s = src.path().to_str().unwrap();
    let env = [
        ("RCLONE_CONFIG_HARBOR_S3_ACCESS_KEY_ID", KEY_ID),
        ("RCLONE_CONFIG_HARBOR_S3_SECRET_ACCESS_KEY", SECRET),
    ];
    let out = s3ferry_env(&home, &["sync", s, &dst, "-vv"], &env);
    let err = ok(&out);
    assert!(!err.contains(SECRET), "secret printed");
    // Without the keys the error names the fix.
    let out = s3ferry(&home, &["sync", s, &dst]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("access_key_id"), "{}", stderr(&out));
    // A wrong secret: access denied, a non-retryable error, and the secret still not printed.
    let env = [
        ("RCLONE_CONFIG_HARBOR_S3_ACCESS_KEY_ID", KEY_ID),
        (
            "RCLONE_CONFIG_HARBOR_S3_SECRET_ACCESS_KEY",
            "wrong-secret-value",
        ),
    ];
    let out = s3ferry_env(&home, &["sync", s, &dst, "-vv"], &env);
    assert!(!stderr(&out).contains("wrong-secret-value"));
}

#[test]
fn s3_urls_use_the_aws_environment() {
    let home = Home::with_conf("");
    let b = bucket("awsenv");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "f", b"x");
    let ep = endpoint();
    let env = [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_ENDPOINT_URL_S3", ep.as_str()),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
    ];
    let dst = format!("s3://{b}/some/prefix");
    let out = s3ferry_env(
        &home,
        &["copy", src.path().to_str().unwrap(), &dst, "--path-style"],
        &env,
    );
    ok(&out);
    assert_eq!(get(&b, "some/prefix/f"), b"x");
}

#[test]
fn usage_errors_exit_2_with_a_message_naming_the_fix() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    let s = src.path().to_str().unwrap();
    let out = s3ferry(&home, &["sync", s, "harbor-s3:bkt", "--no-such-flag"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--no-such-flag"));

    let home2 = Home::with_conf(&format!("{}unsupported_thing = 1\n", seed_conf()));
    let out = s3ferry(&home2, &["sync", s, "harbor-s3:bkt"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("\"unsupported_thing\""),
        "{}",
        stderr(&out)
    );

    let out = s3ferry(&home, &["sync", s, "nosuchremote:bkt"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("RCLONE_CONFIG_NOSUCHREMOTE_TYPE"),
        "{}",
        stderr(&out)
    );

    let out = s3ferry(&home, &["sync", s, "/local/dir"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("REMOTE:BUCKET"), "{}", stderr(&out));

    let out = s3ferry(
        &home,
        &["sync", s, "harbor-s3:bkt", "--s3-chunk-size", "lots"],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn missing_source_and_missing_bucket_exit_3() {
    let home = Home::new();
    let out = s3ferry(
        &home,
        &["sync", "/nonexistent/dir/for/s3ferry", "harbor-s3:whatever"],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("source directory /nonexistent/dir/for/s3ferry not found"));

    let src = tempfile::tempdir().unwrap();
    write(src.path(), "f", b"x");
    let s = src.path().to_str().unwrap();
    let name = format!("absent-{}", std::process::id());
    let dst = format!("harbor-s3:{name}");
    let out = s3ferry(&home, &["sync", s, &dst]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("--create-bucket"), "{}", stderr(&out));
    ok(&s3ferry(&home, &["sync", s, &dst, "--create-bucket"]));
    assert_eq!(get(&name, "f"), b"x");
}

#[test]
fn dry_run_changes_nothing_and_error_on_no_transfer_exits_9() {
    let home = Home::new();
    let b = bucket("dry");
    let src = tempfile::tempdir().unwrap();
    let f = write(src.path(), "f", b"x");
    // An old file, so the object written now is from a later second (see the skip rule).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let s = src.path().to_str().unwrap();
    let dst = format!("harbor-s3:{b}");
    let err = ok(&s3ferry(&home, &["copy", s, &dst, "-n"]));
    assert!(err.contains("f: Skipped copy as --dry-run is set"), "{err}");
    assert!(list(&b).is_empty());
    ok(&s3ferry(&home, &["copy", s, &dst]));
    let out = s3ferry(&home, &["copy", s, &dst, "--error-on-no-transfer"]);
    assert_eq!(code(&out), 9, "{}", stderr(&out));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let home = Home::new();
    let b = bucket("json");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "f", b"x");
    let out = s3ferry(
        &home,
        &[
            "check",
            src.path().to_str().unwrap(),
            &format!("harbor-s3:{b}"),
            "--use-json-log",
        ],
    );
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    let mut levels = Vec::new();
    for line in err.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        levels.push(v["level"].as_str().unwrap().to_string());
        assert!(v["msg"].is_string() && v["time"].is_string());
    }
    assert!(
        levels.contains(&"error".to_string()) && levels.contains(&"notice".to_string()),
        "{err}"
    );
}

#[test]
fn cleanup_aborts_incomplete_uploads_older_than_given() {
    let home = Home::new();
    let b = bucket("cleanup");
    let c = client();
    rt().block_on(async {
        for k in ["a", "p/b"] {
            c.create_multipart_upload()
                .bucket(&b)
                .key(k)
                .send()
                .await
                .unwrap();
        }
    });
    assert_eq!(uploads(&b).len(), 2);
    let dst = format!("harbor-s3:{b}/p");
    let err = ok(&s3ferry(
        &home,
        &["cleanup", &dst, "--older-than", "0s", "--dry-run"],
    ));
    assert!(err.contains("p/b: Skipped abort"), "{err}");
    assert_eq!(uploads(&b).len(), 2);
    // rclone's --max-age is a file filter, not the uploads' age: refused with the fix.
    let out = s3ferry(&home, &["cleanup", &dst, "--max-age", "0s"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--older-than"), "{}", stderr(&out));
    ok(&s3ferry(&home, &["cleanup", &dst, "--older-than", "0s"]));
    let left: Vec<String> = uploads(&b).into_iter().map(|u| u.0).collect();
    assert_eq!(left, vec!["a".to_string()], "only the prefix is cleaned");
}

#[test]
fn version_prints() {
    let home = Home::with_conf("");
    let out = s3ferry(&home, &["version"]);
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("s3ferry "));
}

#[test]
fn s3_urls_use_aws_profiles_from_the_shared_files() {
    let home = Home::with_conf("");
    let b = bucket("profile");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "f", b"profile");
    let creds = home.path().join("credentials");
    std::fs::write(
        &creds,
        format!("[migrate]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    let config = home.path().join("config");
    std::fs::write(&config, "[profile migrate]\nregion = eu-north-1\n").unwrap();
    let ep = endpoint();
    let env = [
        ("AWS_PROFILE", "migrate"),
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
    ];
    let dst = format!("s3://{b}");
    ok(&s3ferry_env(
        &home,
        &[
            "copy",
            src.path().to_str().unwrap(),
            &dst,
            "--endpoint",
            &ep,
            "--path-style",
        ],
        &env,
    ));
    assert_eq!(get(&b, "f"), b"profile");
}
