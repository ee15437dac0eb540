#!/usr/bin/env bash
# Registry round trip: the proof a registry migration needs is that every image still pulls,
# with the same digests, from a registry pointed at the bucket.
#  1. build images offline with umoci (small, a layer over the multipart cutoff, a multi-arch
#     OCI index, a Docker v2 schema 2 copy) and push them with skopeo to Debian's
#     docker-registry (distribution 2.8) on filesystem storage; leave one upload unfinished;
#  2. s3ferry sync + check --one-way the storage root to a bucket (under a root directory);
#  3. start a second docker-registry on the s3 driver against the same S3 server (Ceph RGW;
#     ROUNDTRIP_S3=moto runs it all against moto instead);
#  4. compare every tag's manifest digest, pull every image and hash its blobs, push a new image;
#  4b. the way back: bucket -> second bucket (server-side) -> directory, checked each way, and
#     served by a third docker-registry on the filesystem driver with identical digests;
#  5. a corrupt source blob is refused; a blob deleted from the bucket is reported by check,
#     with its dangling links, and the migrated registry indeed cannot serve it.
# Everything listens on 127.0.0.1 and is stopped on exit. Ends with "roundtrip: N passed, M failed".
#   tests/roundtrip.sh            (S3FERRY_BIN=path to use a built binary)
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/support/harness.sh
regtool() { python3 tests/support/regtool.py "$@"; }
skopeo() { command skopeo --insecure-policy "$@"; }
phase() { echo "--- $* [${SECONDS}s]"; }

bin=${S3FERRY_BIN:-$(docker/build-static.sh)}
SECONDS=0

# --- S3 server and the source registry (filesystem driver) ----------------------------------
export AWS_ACCESS_KEY_ID=roundtrip-key AWS_SECRET_ACCESS_KEY=roundtrip-secret AWS_EC2_METADATA_DISABLED=true
s3_port=$(free_port)
s3=http://127.0.0.1:$s3_port
mkfifo "$work/s3.in"
case ${ROUNDTRIP_S3:-rgw} in
  rgw) # Ceph RGW, the production server: the migrated registry's s3 driver runs against it.
    bash tests/support/ceph_rgw.sh "$work/ceph" "$s3_port" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" \
      <"$work/s3.in" >"$work/s3.ready" 2>"$work/s3.log" &
    pids+=($!)
    exec 9>"$work/s3.in"
    for _ in $(seq 240); do grep -q ready "$work/s3.ready" 2>/dev/null && break; sleep 0.25; done
    grep -q ready "$work/s3.ready" || { echo "Ceph RGW did not start"; cat "$work/s3.log"; exit 1; } ;;
  moto)
    python3 tests/support/moto_server.py "$s3_port" <"$work/s3.in" >/dev/null 2>&1 &
    pids+=($!)
    exec 9>"$work/s3.in"
    wait_port "$s3_port" || { echo "moto did not start"; exit 1; } ;;
  *) echo "ROUNDTRIP_S3 is rgw or moto" >&2; exit 2 ;;
esac
echo "S3 server: ${ROUNDTRIP_S3:-rgw} on $s3"

mkdir -p "$work/home/.config/rclone"
cat >"$work/home/.config/rclone/rclone.conf" <<CONF
[harbor-s3]
type = s3
provider = Ceph
env_auth = false
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = $s3
acl = private
CONF
s3ferry() { HOME=$work/home "$bin" "$@"; }

serve_registry() { # serve_registry NAME PORT STORAGE_YAML [env -u ...]
  local name=$1 port=$2 storage=$3; shift 3
  mkdir -p "$work/$name"
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n%s\nhttp:\n  addr: 127.0.0.1:%s\n' "$storage" "$port" >"$work/$name/config.yml"
  "$@" docker-registry serve "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
  pids+=($!)
  wait_port "$port" || { echo "$name did not start"; cat "$work/$name/log"; exit 1; }
}
src=$work/storage
a_port=$(free_port)
A=127.0.0.1:$a_port
serve_registry source "$a_port" "  filesystem:
    rootdirectory: $src"

# --- 1. images built offline, pushed with skopeo ----------------------------------------------
phase "build images with umoci"
L=$work/layout
(
  set -e
  cd "$work"
  umoci init --layout "$L"
  echo "hello from s3ferry" >hello.txt
  head -c $((12 << 20)) /dev/urandom >big.bin   # incompressible: a 12 MiB layer blob
  echo arm >arm.txt
  echo "pushed after the migration" >new.txt
  for spec in small:hello.txt:amd64 big:big.bin:amd64 arm:arm.txt:arm64 new:new.txt:amd64; do
    IFS=: read -r tag file arch <<<"$spec"
    umoci new --image "$L:$tag"
    umoci insert --image "$L:$tag" "$file" "/$file"
    umoci config --image "$L:$tag" --os linux --architecture "$arch" --config.cmd "/$file"
  done
  python3 "$OLDPWD/tests/support/regtool.py" index "$L" multi small:amd64 arm:arm64 >/dev/null
) >"$work/umoci.log" 2>&1 || { echo "umoci failed"; cat "$work/umoci.log"; exit 1; }
pass "built 4 images and a multi-arch index with umoci"

phase "push to the filesystem registry"
check "push lib/small:1.0 and :latest, lib/big:1.0 (12 MiB layer), lib/multi:1.0 (index) with skopeo" bash -c "
  set -e
  skopeo() { command skopeo --insecure-policy \"\$@\"; }
  skopeo copy --quiet --dest-tls-verify=false oci:$L:small docker://$A/lib/small:1.0
  skopeo copy --quiet --dest-tls-verify=false oci:$L:small docker://$A/lib/small:latest
  skopeo copy --quiet --dest-tls-verify=false oci:$L:big docker://$A/lib/big:1.0
  skopeo copy --quiet --all --dest-tls-verify=false oci:$L:multi docker://$A/lib/multi:1.0"
check "push a Docker v2 schema 2 copy (skopeo --format v2s2)" \
  skopeo copy --quiet --format v2s2 --dest-tls-verify=false "oci:$L:small" "docker://$A/legacy/small:v2s2"
check "the v2s2 copy is served as Docker schema 2" bash -c \
  "command skopeo inspect --raw --tls-verify=false docker://$A/legacy/small:v2s2 | grep -q 'application/vnd.docker.distribution.manifest.v2+json'"
check "leave an upload unfinished (POST + PATCH, no PUT)" regtool start-upload "$A" lib/small 4096
check "the unfinished upload is in _uploads" bash -c "ls -d '$src'/docker/registry/v2/repositories/lib/small/_uploads/*/data"
regtool digests "$A" >"$work/digests.source"
echo "source registry: $(wc -l <"$work/digests.source") tags, $(find "$src" -type f | wc -l) files, $(du -sb "$src" | cut -f1) bytes"

# --- 2. migrate: sync + check ----------------------------------------------------------------
phase "s3ferry sync + check"
# The registry is read-only before a migration starts. Files written in the same second as their
# upload are (by the skip rule) uploaded again on a rerun, so let the pushes settle for a second.
sleep 1.1
small_parts=(--s3-upload-cutoff 5Mi --s3-chunk-size 5Mi)
dst=harbor-s3:roundtrip/harbor
t0=$SECONDS
check "sync the storage root (registry mode, 5 MiB multipart cutoff)" \
  s3ferry sync "$src" "$dst" --create-bucket "${small_parts[@]}" --report "$work/sync.json"
echo "sync took $((SECONDS - t0)) s"
check "registry mode was detected and _uploads left out" python3 - "$work/sync.json" "$src" <<'PY'
import json, sys, os
r = json.load(open(sys.argv[1]))
uploads = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[2]) for f in fs if "/_uploads/" in os.path.join(d, f)]
assert r["registry_uploads_skipped"] == len(uploads) > 0, (r["registry_uploads_skipped"], uploads)
assert r["errors_permanent"] == 0 and r["errors_temporary"] == 0 and r["files_uploaded"] > 0, r
print("uploaded", r["files_uploaded"], "skipped _uploads", r["registry_uploads_skipped"])
PY
check "no _uploads, no leading /, no directory markers in the bucket" bash -c "
  regtool() { python3 tests/support/regtool.py \"\$@\"; }
  regtool s3-ls $s3 roundtrip >'$work/keys'
  [ -s '$work/keys' ] && ! grep -q _uploads '$work/keys' && ! grep -q '^/' '$work/keys' && ! grep -q '/ ' '$work/keys' && grep -q '^harbor/docker/registry/v2/blobs/sha256/' '$work/keys'"
check "the 12 MiB layer is a 3-part multipart object" bash -c \
  "python3 -c \"import boto3,sys; c=boto3.client('s3',endpoint_url='$s3',region_name='us-east-1'); ks=[o for o in c.list_objects_v2(Bucket='roundtrip',Prefix='harbor/docker/registry/v2/blobs')['Contents'] if o['Size']>(5<<20)]; assert len(ks)==1 and ks[0]['ETag'].strip('\\\"').endswith('-3'), ks\""
t0=$SECONDS
check "check --one-way: 0 differences, every blob's digest verified" bash -c "
  HOME='$work/home' '$bin' check '$src' '$dst' --one-way --report '$work/check.json' 2>'$work/check.log'; c=\$?
  cat '$work/check.log'; [ \$c -eq 0 ] && grep -q '0 differences found' '$work/check.log' &&
  python3 -c \"import json; r=json.load(open('$work/check.json')); n=$(find "$src/docker/registry/v2/blobs" -name data | wc -l); assert r['blobs_digest_verified']==n>0, (r['blobs_digest_verified'], n)\""
echo "check took $((SECONDS - t0)) s"
check "a rerun transfers nothing" bash -c "
  HOME='$work/home' '$bin' sync '$src' '$dst' ${small_parts[*]} --report '$work/rerun.json' &&
  python3 -c \"import json; r=json.load(open('$work/rerun.json')); assert r['files_uploaded']==0 and r['bytes_uploaded']==0, r\""

# --- 3. the migrated registry: s3 driver on the bucket ------------------------------------------
phase "registry on the s3 driver"
b_port=$(free_port)
B=127.0.0.1:$b_port
# distribution 2.8's AWS SDK fails on AWS_CA_BUNDLE; unset it for this process only.
serve_registry migrated "$b_port" "  s3:
    accesskey: $AWS_ACCESS_KEY_ID
    secretkey: $AWS_SECRET_ACCESS_KEY
    region: us-east-1
    regionendpoint: $s3
    bucket: roundtrip
    rootdirectory: /harbor
    secure: false
    v4auth: true
  redirect:
    disable: true" env -u AWS_CA_BUNDLE

# --- 4. same digests, every blob pulls and hashes, pushes work ------------------------------------
phase "compare and pull"
regtool digests "$B" >"$work/digests.migrated" 2>"$work/digests.err"
check "every tag's manifest digest is identical ($(wc -l <"$work/digests.source") tags)" bash -c \
  "cat '$work/digests.err'; [ \$(wc -l <'$work/digests.source') -eq 5 ] && diff '$work/digests.source' '$work/digests.migrated'"
pulled_ok=true
while read -r ref _; do
  name=${ref//\//_}; name=${name//:/_}
  skopeo copy --quiet --all --src-tls-verify=false "docker://$B/$ref" "oci:$work/pulled:$name" >>"$work/pull.log" 2>&1 || { pulled_ok=false; echo "pull $ref failed"; }
done <"$work/digests.source"
check "every image pulls from the migrated registry (skopeo copy --all)" bash -c "$pulled_ok || { cat '$work/pull.log'; false; }"
check "every pulled blob hashes to its digest" bash -c "n=\$(python3 tests/support/regtool.py verify-layout '$work/pulled'); echo \"\$n blobs\"; [ \"\$n\" -ge 8 ]"
check "push a new image to the migrated registry and pull it back" bash -c "
  set -e
  skopeo() { command skopeo --insecure-policy \"\$@\"; }
  skopeo copy --quiet --dest-tls-verify=false oci:$L:new docker://$B/lib/pushed:1
  skopeo copy --quiet --src-tls-verify=false docker://$B/lib/pushed:1 oci:$work/pushed:1
  python3 tests/support/regtool.py s3-ls $s3 roundtrip harbor/docker/registry/v2/repositories/lib/pushed/ | grep -q _manifests/tags/1/current/link"

# --- 4b. the way back: bucket -> bucket -> directory, served by the filesystem driver -----------
phase "bucket to bucket, then restore"
regtool digests "$B" >"$work/digests.bucket" 2>/dev/null
dr=harbor-s3:roundtrip-dr/harbor
check "sync the bucket to a second bucket (one endpoint: copied by the server, no body through s3ferry)" bash -c "
  HOME='$work/home' '$bin' sync '$dst' '$dr' --create-bucket --report '$work/dr.json' &&
  python3 -c \"import json; r=json.load(open('$work/dr.json')); q=r['requests']; assert r['objects_copied']>0 and r['server_side_copies']==r['objects_copied'] and q['get']==0 and q['upload_part']==0 and r['requests_source']['get']==0, r\""
check "check bucket against bucket: 0 differences" bash -c "
  HOME='$work/home' '$bin' check '$dst' '$dr' 2>'$work/drcheck.log'; c=\$?; cat '$work/drcheck.log'; [ \$c -eq 0 ] && grep -q ' 0 differences found' '$work/drcheck.log'"
restored=$work/restored
check "restore the second bucket into a directory (registry mode: blobs by digest, links after blobs)" bash -c "
  HOME='$work/home' '$bin' sync '$dr' '$restored' --report '$work/restore.json' 2>'$work/restore.log'; c=\$?; cat '$work/restore.log'
  [ \$c -eq 0 ] && grep -q 'registry mode' '$work/restore.log' &&
  python3 -c \"import json; r=json.load(open('$work/restore.json')); assert r['files_restored']>0 and r['errors_permanent']==0 and r['errors_temporary']==0, r\""
check "check the bucket against the restored directory --one-way: 0 differences" bash -c "
  HOME='$work/home' '$bin' check '$dr' '$restored' --one-way 2>'$work/rcheck.log'; c=\$?; cat '$work/rcheck.log'; [ \$c -eq 0 ] && grep -q ' 0 differences found' '$work/rcheck.log'"
r_port=$(free_port)
R=127.0.0.1:$r_port
serve_registry restored "$r_port" "  filesystem:
    rootdirectory: $restored"
regtool digests "$R" >"$work/digests.restored" 2>"$work/digests.rerr"
check "the restored registry (filesystem driver) serves every tag with identical digests" bash -c \
  "cat '$work/digests.rerr'; [ \$(wc -l <'$work/digests.bucket') -ge 6 ] && diff '$work/digests.bucket' '$work/digests.restored'"
check "every image pulls from the restored registry and its blobs hash to their digests" bash -c "
  set -e
  while read -r ref _; do
    name=\${ref//\\//_}; name=\${name//:/_}
    command skopeo --insecure-policy copy --quiet --all --src-tls-verify=false docker://$R/\$ref oci:$work/rpulled:\$name
  done <'$work/digests.bucket'
  n=\$(python3 tests/support/regtool.py verify-layout '$work/rpulled'); echo \"\$n blobs\"; [ \"\$n\" -ge 8 ]"

# --- 5. corrupt and missing blobs --------------------------------------------------------------
phase "corrupt and missing blobs"
bad=$work/corrupt
cp -a "$src" "$bad"
big=$(find "$bad/docker/registry/v2/blobs" -name data -size +5M)
big_hex=$(basename "$(dirname "$big")")
printf 'X' | dd of="$big" bs=1 seek=1000 conv=notrunc status=none
check "sync refuses a corrupt source blob (exit 6), uploads the rest, holds its link back" bash -c "
  HOME='$work/home' '$bin' sync '$bad' harbor-s3:corrupt --create-bucket ${small_parts[*]} >'$work/corrupt.log' 2>&1; c=\$?
  cat '$work/corrupt.log'; [ \$c -eq 6 ] && grep -q 'corrupt blob: its path says sha256:$big_hex' '$work/corrupt.log' || exit 1
  python3 tests/support/regtool.py s3-ls $s3 corrupt >'$work/corrupt.keys'
  ! grep -q '$big_hex' '$work/corrupt.keys' && [ \$(grep -c '/data ' '$work/corrupt.keys') -ge 5 ]"
check "check names the corrupt source blob against the good bucket" bash -c "
  HOME='$work/home' '$bin' check '$bad' '$dst' --one-way >'$work/ccorrupt.log' 2>&1; c=\$?
  cat '$work/ccorrupt.log'; [ \$c -eq 1 ] && grep -q 'corrupt source blob: its path says sha256:$big_hex' '$work/ccorrupt.log'"

small_layer=$(python3 -c "
import json; L='$L'
i=json.load(open(L+'/index.json'))
m=next(x for x in i['manifests'] if x['annotations']['org.opencontainers.image.ref.name']=='small')
man=json.load(open(L+'/blobs/sha256/'+m['digest'].split(':')[1]))
print(man['layers'][0]['digest'].split(':')[1])")
check "delete one layer blob from the bucket" \
  regtool s3-rm "$s3" roundtrip "harbor/docker/registry/v2/blobs/sha256/${small_layer:0:2}/$small_layer/data"
check "check reports the missing blob and its dangling links (exit 1)" bash -c "
  HOME='$work/home' '$bin' check '$src' '$dst' --one-way --report '$work/missing.json' >'$work/missing.log' 2>&1; c=\$?
  cat '$work/missing.log'; [ \$c -eq 1 ] && grep -q '$small_layer/data: file not in S3 bucket' '$work/missing.log' &&
  python3 -c \"import json; r=json.load(open('$work/missing.json')); assert r['missing_on_dst']==1 and r['dangling_links']>=3, r\""
check "and the migrated registry indeed cannot serve that image (blob unknown)" bash -c "
  command skopeo --insecure-policy copy --quiet --src-tls-verify=false docker://$B/lib/small:1.0 oci:$work/broken:x >'$work/broken.log' 2>&1; c=\$?
  cat '$work/broken.log'; [ \$c -ne 0 ] && grep -qiE 'blob unknown|404|not found' '$work/broken.log'"

echo "roundtrip: $passed passed, $failed failed (${SECONDS}s)"
[ "$failed" -eq 0 ]
