//! Shared test setup: a real S3 server (moto) on 127.0.0.1, started once per test binary and
//! stopped when the binary exits; an SDK client for inspecting and tampering with buckets; and
//! helpers to run the `s3ferry` binary with an rclone.conf in the Job's shape.
#![allow(dead_code)]

pub mod badserver;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

/// Flags that make multipart paths run with small files: 5 MiB cutoff and parts.
pub const SMALL_PARTS: [&str; 4] = ["--s3-upload-cutoff", "5Mi", "--s3-chunk-size", "5Mi"];

pub const KEY_ID: &str = "AKIDTESTS3FERRY";
pub const SECRET: &str = "s3ferry-test-secret-value";

/// A server started for this test binary. It lives in a `static`, which is never dropped, so
/// it is stopped by the pipe: when the binary exits, the server's stdin closes and it exits.
pub struct Server {
    pub port: u16,
    _stdin: ChildStdin,
    _child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start a server that prints a line starting with `ready` once it serves `port`, and stops
/// when its stdin closes; `None` (after it exits) if the first line says otherwise.
fn start_until_ready(mut cmd: Command, port: u16, what: &str) -> Option<Server> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if !line.starts_with("ready") {
        eprintln!("{what} did not start: {line:?}");
        let _ = child.wait();
        return None;
    }
    let stdin = child.stdin.take().unwrap();
    Some(Server {
        port,
        _stdin: stdin,
        _child: child,
    })
}

/// The moto server for this test binary.
pub fn moto() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_server.py");
        let python = std::env::var("S3FERRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.arg(script).arg(port.to_string()).stderr(Stdio::null());
        start_until_ready(cmd, port, "moto (pip install 'moto[server]')")
            .expect("moto did not start")
    })
}

/// s3s-fs (a second, independent S3 implementation; it has no ListMultipartUploads and no
/// part ETags), started once per test binary on 127.0.0.1 with its data in a temp dir.
/// `S3FERRY_S3S_FS` names the binary; otherwise `s3s-fs` on PATH (tests/setup.sh installs it).
///
/// A static is never dropped and s3s-fs does not watch its parent, so a small shell keeps it:
/// when this binary exits, the shell's stdin closes, and it stops the server and removes its
/// data (moto's script does the same for itself).
pub fn s3s_fs() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let bin = std::env::var("S3FERRY_S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        if let Err(e) = Command::new(&bin).arg("--help").output() {
            panic!("start {bin}: {e}: run tests/setup.sh (cargo install s3s-fs)");
        }
        let root = tempfile::tempdir().unwrap().keep();
        let _ = S3S_FS_ROOT.set(root.clone());
        let port = free_port();
        let keeper = r#"root=$1; shift; "$@" </dev/null >/dev/null 2>&1 & pid=$!
cat >/dev/null; kill "$pid"; wait "$pid"; rm -rf "$root""#;
        let mut child = Command::new("sh")
            .args(["-c", keeper, "s3s-fs-keeper"])
            .arg(&root)
            .arg(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", KEY_ID, "--secret-key", SECRET])
            .arg(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sh");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let stdin = child.stdin.take().unwrap();
        Server {
            port,
            _stdin: stdin,
            _child: child,
        }
    })
}

static S3S_FS_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Where s3s-fs keeps its buckets (one directory each, objects as files under their keys): for
/// tests that damage an object behind the server's back.
pub fn s3s_fs_root() -> &'static Path {
    s3s_fs();
    S3S_FS_ROOT.get().expect("set when s3s-fs starts")
}

/// Ceph RGW (a production S3 server: it validates Content-MD5 and answers
/// CompleteMultipartUpload with an empty ETag), a single-node cluster started once per test
/// binary by `tests/support/ceph_rgw.sh` (about 15 s) and stopped, its data removed, when the
/// binary exits. Needs Debian's ceph-mon, ceph-osd, radosgw and ceph-common (tests/setup.sh).
pub fn rgw() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        // A second try, on fresh ports, if a first start fails (its reason is on stderr).
        start_rgw()
            .or_else(start_rgw)
            .unwrap_or_else(|| panic!("Ceph RGW did not start twice: see its messages above"))
    })
}

fn start_rgw() -> Option<Server> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ceph_rgw.sh");
    let dir = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .arg(&dir)
        .arg(port.to_string())
        .args([KEY_ID, SECRET])
        .stderr(Stdio::inherit());
    start_until_ready(cmd, port, "Ceph RGW (tests/setup.sh installs it)")
}

pub fn endpoint() -> String {
    format!("http://127.0.0.1:{}", moto().port)
}

/// An SDK client for the moto server (plain HTTP).
pub fn client() -> Client {
    client_at(&endpoint())
}

/// An SDK client for any test server.
pub fn client_at(endpoint: &str) -> Client {
    // The same HTTP client the binary uses (it copes with moto's response quirks).
    let http = s3ferry::s3::http::build(&s3ferry::s3::http::HttpOptions::default()).unwrap();
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(KEY_ID, SECRET, None, None, "tests"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh, empty bucket with a unique name.
pub fn bucket(tag: &str) -> String {
    bucket_at(&client(), tag)
}

/// A fresh, empty bucket with a unique name, on the server `c` talks to.
pub fn bucket_at(c: &Client, tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t-{}-{}-{}",
        tag,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    rt().block_on(async { c.create_bucket().bucket(&name).send().await.unwrap() });
    name
}

/// An object as listed.
#[derive(Debug, Clone)]
pub struct Obj {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

pub fn list(bucket: &str) -> Vec<Obj> {
    list_at(&client(), bucket)
}

pub fn list_at(c: &Client, bucket: &str) -> Vec<Obj> {
    rt().block_on(async {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = c
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            for o in page.contents() {
                out.push(Obj {
                    key: o.key().unwrap().to_string(),
                    size: o.size().unwrap() as u64,
                    etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                });
            }
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        out
    })
}

pub fn get(bucket: &str, key: &str) -> Vec<u8> {
    get_at(&client(), bucket, key)
}

pub fn get_at(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    rt().block_on(async {
        let o = c.get_object().bucket(bucket).key(key).send().await.unwrap();
        o.body.collect().await.unwrap().into_bytes().to_vec()
    })
}

pub fn put(bucket: &str, key: &str, data: &[u8]) {
    let c = client();
    let data = data.to_vec();
    rt().block_on(async {
        c.put_object()
            .bucket(bucket)
            .key(key)
            .body(data.into())
            .send()
            .await
            .unwrap()
    });
}

pub fn delete(bucket: &str, key: &str) {
    let c = client();
    rt().block_on(async {
        c.delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap()
    });
}

/// Start a multipart upload; its id.
async fn create_upload(c: &Client, bucket: &str, key: &str) -> String {
    c.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string()
}

/// Upload `data` as a multipart object with the given part size and no metadata, as another
/// tool would.
pub fn put_multipart(bucket: &str, key: &str, data: &[u8], part_size: usize) -> String {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let c = client();
    rt().block_on(async {
        let id = create_upload(&c, bucket, key).await;
        let mut parts = Vec::new();
        for (i, chunk) in data.chunks(part_size).enumerate() {
            let n = i as i32 + 1;
            let r = c
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .part_number(n)
                .body(chunk.to_vec().into())
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(r.e_tag().unwrap())
                    .build(),
            );
        }
        let done = c
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        done.e_tag().unwrap().trim_matches('"').to_string()
    })
}

/// In-progress multipart uploads in a bucket: (key, upload id, parts listed).
pub fn uploads(bucket: &str) -> Vec<(String, String, usize)> {
    uploads_at(&client(), bucket)
}

pub fn uploads_at(c: &Client, bucket: &str) -> Vec<(String, String, usize)> {
    rt().block_on(async {
        let page = c
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        let mut out = Vec::new();
        for u in page.uploads() {
            let (k, id) = (
                u.key().unwrap().to_string(),
                u.upload_id().unwrap().to_string(),
            );
            let parts = c
                .list_parts()
                .bucket(bucket)
                .key(&k)
                .upload_id(&id)
                .send()
                .await
                .unwrap()
                .parts()
                .len();
            out.push((k, id, parts));
        }
        out
    })
}

/// Wait, while `child` (a sync) runs, until the first incomplete upload in `bucket` (on the
/// server `c` talks to) has at least `n` parts; how many it has then. Fails the test if the
/// sync ends first or no parts appear within a minute.
pub fn wait_for_parts(child: &mut Child, c: &Client, bucket: &str, n: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some((_, _, parts)) = uploads_at(c, bucket).first()
            && *parts >= n
        {
            return *parts;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync finished before it could be killed"
        );
        assert!(std::time::Instant::now() < deadline, "no parts appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A home directory holding `.config/rclone/rclone.conf` in the seed Job's shape.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Self::with_conf(&seed_conf())
    }

    pub fn with_conf(conf: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".config/rclone");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("rclone.conf"), conf).unwrap();
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// rclone.conf exactly as the seed Job's ConfigMap has it, pointing at the test server.
pub fn seed_conf() -> String {
    conf_for(&endpoint())
}

/// rclone.conf in the seed Job's shape for another endpoint (e.g. a proxy).
pub fn conf_for(endpoint: &str) -> String {
    format!(
        "[harbor-s3]\ntype = s3\nprovider = Minio\nenv_auth = false\naccess_key_id = {KEY_ID}\nsecret_access_key = {SECRET}\nendpoint = {endpoint}\nacl = private\n# region = us-east-1\n"
    )
}

/// Run s3ferry with `HOME` set to `home` and a clean rclone/AWS environment.
pub fn s3ferry(home: &Home, args: &[&str]) -> Output {
    s3ferry_env(home, args, &[])
}

/// How long any one run of s3ferry may take in the tests before it is killed and the test
/// fails: nothing may hang the suite.
pub const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

pub fn s3ferry_env(home: &Home, args: &[&str], env: &[(&str, &str)]) -> Output {
    s3ferry_bounded(home, args, env, RUN_LIMIT)
}

/// Run s3ferry, killing it and failing the test if it runs longer than `limit`.
#[track_caller]
pub fn s3ferry_bounded(
    home: &Home,
    args: &[&str],
    env: &[(&str, &str)],
    limit: std::time::Duration,
) -> Output {
    let mut cmd = command(home, args, env);
    Bounded::start(&mut cmd).wait(limit, &format!("s3ferry {args:?}"))
}

/// A run of s3ferry started, whose output is collected while the test goes on; waiting for it
/// is bounded.
pub struct Bounded {
    pid: u32,
    rx: std::sync::mpsc::Receiver<std::io::Result<Output>>,
}

impl Bounded {
    /// Start `cmd` with its output captured.
    pub fn start(cmd: &mut Command) -> Bounded {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run s3ferry");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        Bounded { pid, rx }
    }

    /// Its output, or (killed after `limit`) a failed test naming `what`.
    #[track_caller]
    pub fn wait(self, limit: std::time::Duration, what: &str) -> Output {
        match self.rx.recv_timeout(limit) {
            Ok(out) => out.expect("run s3ferry"),
            Err(_) => {
                unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
                panic!("{what} still running after {limit:?}: killed");
            }
        }
    }
}

/// Start a multipart upload of `key` (with one small part) and leave it incomplete.
pub fn start_upload(bucket: &str, key: &str) -> String {
    let c = client();
    rt().block_on(async {
        let id = create_upload(&c, bucket, key).await;
        c.upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(1)
            .body(vec![1u8; 1024].into())
            .send()
            .await
            .unwrap();
        id
    })
}

pub fn command(home: &Home, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3ferry"));
    for (k, _) in std::env::vars() {
        if k.starts_with("RCLONE_")
            || (k.starts_with("AWS_") && k != "AWS_CA_BUNDLE")
            || k == "XDG_CONFIG_HOME"
        {
            cmd.env_remove(k);
        }
    }
    // Never let the AWS default chain reach for instance metadata (a non-loopback address).
    cmd.env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Assert success and return stderr.
#[track_caller]
pub fn ok(o: &Output) -> String {
    let e = stderr(o);
    assert_eq!(code(o), 0, "s3ferry failed:\n{e}");
    e
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn write(root: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    p
}

/// Set a file's mtime an hour back, like a registry at rest (so an object written now is from
/// a later second, and the skip rule applies).
pub fn make_old(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
}

/// `write` then `make_old`.
pub fn write_old(root: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let p = write(root, rel, data);
    make_old(&p);
    p
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

/// Run s3ferry with `--report` into the home directory; its output and the report.
pub fn s3ferry_reported(home: &Home, args: &[&str]) -> (Output, serde_json::Value) {
    let rep = home.path().join("report.json");
    let mut args = args.to_vec();
    args.extend(["--report", rep.to_str().unwrap()]);
    let out = s3ferry(home, &args);
    let r = report(&rep);
    (out, r)
}

/// Read the JSON report a run wrote.
pub fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A seccomp filter that makes io_uring_setup fail with EPERM, installed in the child before
/// exec (what a container runtime's default profile does).
pub fn block_io_uring(cmd: &mut std::process::Command) {
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
    const NR_IO_URING_SETUP: u32 = 425; // the same on x86_64 and aarch64
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let filter = [
        stmt(ld, 4), // seccomp_data.arch
        jeq(ARCH, 0, 3),
        stmt(ld, 0), // seccomp_data.nr
        jeq(NR_IO_URING_SETUP, 0, 1),
        stmt(ret, RET_ERRNO | libc::EPERM as u32),
        stmt(ret, RET_ALLOW),
    ];
    // SAFETY: only async-signal-safe calls (prctl) between fork and exec; the filter outlives
    // them (moved into the closure).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Wait for the next second: an object written after this is from a later second than every
/// file change made before it (S3 keeps whole seconds), so a rerun finds those files
/// untouched since their upload from the listing alone.
pub fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    let rest = 1_000_000_000 - u64::from(now.subsec_nanos()) + 20_000_000;
    std::thread::sleep(std::time::Duration::from_nanos(rest));
}
