//! `--shard I/N` as N pods of an Indexed Job use it: together they equal one unsharded run,
//! and each deletes and checks only inside its own shard.

mod support;

use support::*;

fn registry_tree(root: &std::path::Path) -> usize {
    let mut n = 0;
    for i in 0..40u32 {
        let blob = bytes(1000 + i as usize * 97, i as u64);
        // Real content addresses: registry mode checks them.
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&blob))
        };
        let p = write(
            root,
            &format!(
                "docker/registry/v2/blobs/sha256/{}/{digest}/data",
                &digest[..2]
            ),
            &blob,
        );
        let l = write(
            root,
            &format!(
                "docker/registry/v2/repositories/team{}/app/_layers/sha256/{digest}/link",
                i % 5
            ),
            format!("sha256:{digest}").as_bytes(),
        );
        make_old(&p);
        make_old(&l);
        n += 2;
    }
    n
}

fn keys_and_etags(b: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = list(b).into_iter().map(|o| (o.key, o.etag)).collect();
    v.sort();
    v
}

#[test]
fn shards_together_equal_one_unsharded_run() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    let files = registry_tree(src.path());
    let s = src.path().to_str().unwrap();
    let (whole, sharded) = (bucket("whole"), bucket("sharded"));
    ok(&s3ferry(&home, &["sync", s, &format!("harbor-s3:{whole}")]));
    let dst = format!("harbor-s3:{sharded}");
    let mut per_shard = Vec::new();
    for i in 0..3 {
        let rep = home.path().join(format!("shard{i}.json"));
        // The Indexed Job form: auto/N with the index from the environment.
        let out = s3ferry_env(
            &home,
            &[
                "sync",
                s,
                &dst,
                "--shard",
                "auto/3",
                "--report",
                rep.to_str().unwrap(),
            ],
            &[("JOB_COMPLETION_INDEX", &i.to_string())],
        );
        ok(&out);
        per_shard.push(report(&rep)["files_uploaded"].as_u64().unwrap());
        let err = ok(&s3ferry(
            &home,
            &["check", s, &dst, "--one-way", "--shard", &format!("{i}/3")],
        ));
        assert!(err.contains("0 differences found"), "{err}");
    }
    assert_eq!(
        per_shard.iter().sum::<u64>(),
        files as u64,
        "each file once: {per_shard:?}"
    );
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    assert_eq!(keys_and_etags(&whole), keys_and_etags(&sharded));
    let err = ok(&s3ferry(&home, &["check", s, &dst]));
    assert!(err.contains(&format!("{files} matching files")), "{err}");
}

#[test]
fn a_sharded_sync_deletes_only_inside_its_shard() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    registry_tree(src.path());
    let s = src.path().to_str().unwrap();
    let b = bucket("sharddel");
    let dst = format!("harbor-s3:{b}");
    ok(&s3ferry(&home, &["sync", s, &dst]));
    // Stale blobs in every blob directory: 256 of them, spread over all shards.
    for x in 0..=255u32 {
        put(
            &b,
            &format!("docker/registry/v2/blobs/sha256/{x:02x}/stale{x:02x}/data"),
            b"old",
        );
    }
    let rep = home.path().join("r.json");
    ok(&s3ferry(
        &home,
        &[
            "sync",
            s,
            &dst,
            "--shard",
            "1/4",
            "--report",
            rep.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        report(&rep)["deleted"],
        64,
        "only shard 1's 64 blob directories"
    );
    let stale: Vec<String> = list(&b)
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.contains("/stale"))
        .collect();
    assert_eq!(stale.len(), 192);
    assert!(stale.iter().all(|k| {
        let xx =
            u32::from_str_radix(&k["docker/registry/v2/blobs/sha256/".len()..][..2], 16).unwrap();
        xx % 4 != 1
    }));
}

#[test]
fn bad_shard_values_are_usage_errors() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    let s = src.path().to_str().unwrap();
    for (arg, needle) in [("3/3", "0 <= I < N"), ("auto/3", "JOB_COMPLETION_INDEX")] {
        let out = s3ferry(&home, &["sync", s, "harbor-s3:bkt", "--shard", arg]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
}
