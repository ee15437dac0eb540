#!/usr/bin/env bash
# Run the main job end to end on a local default: generate a sample registry tree, start a
# local S3 server (moto) on 127.0.0.1, then do what the Kubernetes Job does:
#   s3ferry sync  DATA harbor-s3:harbor --progress
#   s3ferry check DATA harbor-s3:harbor --one-way --progress
# with an rclone.conf in the Job's shape, and finally show that a rerun uploads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh --moto-only
cargo build --release --locked --quiet
bin="$PWD/target/release/s3ferry"

work=$(mktemp -d)
moto_pid=""
cleanup() { [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 tests/support/gen_registry.py "$work/data" --repos 3 --blobs 12 --big-mib 80
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkfifo "$work/moto.stdin"
python3 tests/support/moto_server.py "$port" < "$work/moto.stdin" > "$work/moto.out" 2>/dev/null &
moto_pid=$!
exec 9>"$work/moto.stdin"
for _ in $(seq 100); do grep -q ready "$work/moto.out" 2>/dev/null && break; sleep 0.1; done

export HOME="$work/home"
mkdir -p "$HOME/.config/rclone"
cat > "$HOME/.config/rclone/rclone.conf" <<CONF
[harbor-s3]
type = s3
provider = Minio
env_auth = false
access_key_id = demo-access-key
secret_access_key = demo-secret-key
endpoint = http://127.0.0.1:$port
acl = private
CONF

echo "== sync (creates the bucket: a real Job's bucket exists already)"
"$bin" sync "$work/data" harbor-s3:harbor --progress --create-bucket
echo "== check --one-way"
"$bin" check "$work/data" harbor-s3:harbor --one-way --progress 2>&1 | tee "$work/check.log"
grep -q "0 differences found" "$work/check.log"
echo "== rerun: nothing to upload"
"$bin" sync "$work/data" harbor-s3:harbor --report "$work/rerun.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("rerun sent", r["requests"]["total"], "requests,", r["requests"]["bytes_sent"], "bytes; uploaded", r["files_uploaded"], "files")' "$work/rerun.json"
echo "demo OK"
