#!/usr/bin/env bash
# Delivery tests: the static binary, the chroot/TLS/DNS run, the umoci-built image's round trip
# through a local registry, and the Kubernetes manifests. Everything listens on 127.0.0.1 and
# is stopped on exit. Needs root (chroot) and the Debian packages tests/setup.sh installs.
# Ends with a line "delivery: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. tests/support/harness.sh
chroot_bin=$(command -v chroot)

# --- S3 server -----------------------------------------------------------------------------
moto_port=$(free_port)
tls_port=$(free_port)
mkfifo "$work/moto.in"
# moto routes by Host; tell it the TLS front's name is an endpoint, not a bucket.
MOTO_S3_CUSTOM_ENDPOINTS="https://s3.test.internal:$tls_port" \
  python3 tests/support/moto_server.py "$moto_port" <"$work/moto.in" >/dev/null 2>&1 &
pids+=($!)
exec 9>"$work/moto.in"
wait_port "$moto_port" || { echo "moto did not start"; exit 1; }

# --- 1. static binaries, amd64 and arm64 --------------------------------------------------------
bin=$(docker/build-static.sh amd64)
size=$(stat -c %s "$bin")
echo "static binary: $bin ($size bytes)"
check "binary is statically linked (file)" bash -c "file '$bin' | grep -Eq 'static(-pie)? linked'"
check "binary is statically linked (ldd)" bash -c "ldd '$bin' 2>&1 | grep -Eq 'not a dynamic executable|statically linked'"
check "binary is at most 15 MB" test "$size" -le $((15 * 1024 * 1024))
arm_start=$(date +%s)
arm_bin=$(docker/build-static.sh arm64)
arm_size=$(stat -c %s "$arm_bin")
echo "static arm64 binary: $arm_bin ($arm_size bytes, built in $(($(date +%s) - arm_start)) s)"
check "arm64 binary is an aarch64 static executable" bash -c "file '$arm_bin' | tee /dev/stderr | grep -q 'ARM aarch64' && file '$arm_bin' | grep -Eq 'static(-pie|ally)? linked'"
check "arm64 binary is at most 15 MB" test "$arm_size" -le $((15 * 1024 * 1024))

# --- 2. empty root: host name + TLS with a private CA -----------------------------------------
pki=$work/pki; mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.pem" -days 2 \
  -subj /CN=s3ferry-test-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$pki/srv.key" -out "$pki/srv.csr" -subj /CN=s3.test.internal 2>/dev/null
printf 'subjectAltName=DNS:s3.test.internal\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$pki/ext"
openssl x509 -req -in "$pki/srv.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
  -out "$pki/srv.pem" -days 2 -extfile "$pki/ext" 2>/dev/null
ngx=$work/nginx; mkdir -p "$ngx"
cat >"$ngx/nginx.conf" <<CONF
worker_processes 1;
pid $ngx/nginx.pid;
error_log $ngx/error.log;
events {}
http {
  access_log off;
  client_body_temp_path $ngx/body; proxy_temp_path $ngx/proxy; fastcgi_temp_path $ngx/fcgi;
  uwsgi_temp_path $ngx/uwsgi; scgi_temp_path $ngx/scgi;
  server {
    listen 127.0.0.1:$tls_port ssl;
    server_name s3.test.internal;
    ssl_certificate $pki/srv.pem;
    ssl_certificate_key $pki/srv.key;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    location / {
      proxy_pass http://127.0.0.1:$moto_port;
      proxy_set_header Host \$http_host;
      proxy_http_version 1.1;
    }
  }
}
CONF
nginx -c "$ngx/nginx.conf" -p "$ngx" -g 'daemon off;' &
pids+=($!)
wait_port "$tls_port" || { echo "nginx did not start"; cat "$ngx/error.log"; exit 1; }

# make_root DIR BINARY: an empty root with only what a pod gets (binary, CA bundle,
# resolv.conf, hosts), plus the data to sync and the rclone.conf as the Job mounts it.
make_root() {
  local r=$1 b=$2
  mkdir -p "$r/etc/ssl/certs" "$r/root/.config/rclone" "$r/tmp"
  [ -e "$r/s3ferry" ] || install -m 0755 "$b" "$r/s3ferry"
  [ -e "$r/etc/ssl/certs/ca-certificates.crt" ] || cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
  printf 'nameserver 127.0.0.1\noptions ndots:5\n' >"$r/etc/resolv.conf"
  printf '127.0.0.1 localhost\n127.0.0.1 s3.test.internal\n' >"$r/etc/hosts"
  cp "$pki/ca.pem" "$r/ca.pem"
  chmod 755 "$r/root" "$r/root/.config" "$r/root/.config/rclone"
  cat >"$r/root/.config/rclone/rclone.conf" <<CONF
[harbor-s3]
type = s3
provider = Minio
env_auth = false
access_key_id = delivery-key
secret_access_key = delivery-secret
endpoint = https://s3.test.internal:$tls_port
acl = private
CONF
  chmod 644 "$r/root/.config/rclone/rclone.conf"
  python3 tests/support/gen_registry.py "$r/data" --repos 2 --blobs 4 --big-mib 70 >/dev/null
  chmod -R a+rX "$r/data"
}
cr=$work/root
make_root "$cr" "$bin"
check "chroot: bucket created over TLS by host name with --ca-cert" \
  env -i $chroot_bin "$cr" /s3ferry sync /data harbor-s3:delivery --ca-cert /ca.pem --create-bucket
check "chroot: check --one-way with AWS_CA_BUNDLE" bash -c \
  "env -i AWS_CA_BUNDLE=/ca.pem $chroot_bin '$cr' /s3ferry check /data harbor-s3:delivery --one-way 2>&1 | tee /dev/stderr | grep -q '0 differences found'"
check "chroot: as 65532:65532, config found at /root/.config/rclone, seed args" bash -c \
  "env -i AWS_CA_BUNDLE=/ca.pem $chroot_bin --userspec=65532:65532 '$cr' /s3ferry check /data harbor-s3:delivery --one-way --progress 2>&1 | grep -q '0 differences found'"
check "chroot: an unknown CA is refused, not retried (exit 6, certificate error)" bash -c \
  "env -i $chroot_bin '$cr' /s3ferry check /data harbor-s3:delivery --one-way >'$work/untrusted.log' 2>&1; c=\$?; cat '$work/untrusted.log'; [ \$c -eq 6 ] && grep -qi 'certificate' '$work/untrusted.log'"
check "chroot: --no-check-certificate works and warns" bash -c \
  "env -i $chroot_bin '$cr' /s3ferry check /data harbor-s3:delivery --one-way --no-check-certificate 2>&1 | tee '$work/insecure.log' | grep -q '0 differences found' && grep -q 'NOT verified' '$work/insecure.log'"
check "chroot: a name that does not resolve fails cleanly" bash -c \
  "sed -i 's/s3.test.internal:/nowhere.test.internal:/' '$cr/root/.config/rclone/rclone.conf'; env -i $chroot_bin '$cr' /s3ferry check /data harbor-s3:delivery --one-way --ca-cert /ca.pem --low-level-retries 1 >'$work/dns.log' 2>&1; c=\$?; sed -i 's/nowhere.test.internal:/s3.test.internal:/' '$cr/root/.config/rclone/rclone.conf'; cat '$work/dns.log'; [ \$c -eq 5 ] && grep -q 'resolve' '$work/dns.log'"

# --- 2b. the arm64 binary under emulation, in an empty root, as 65532 ----------------------------
# qemu-aarch64-static runs it without binfmt_misc: the emulator is copied into the root and
# names the binary. io_uring is not emulated, so the run also proves the fallback to pread.
ar=$work/arm64-root
make_root "$ar" "$arm_bin"
install -m 0755 "$(command -v qemu-aarch64-static)" "$ar/qemu-aarch64-static"
# arm64 ARGS...: the emulated binary in the empty root, as 65532, with the test CA.
arm64() { env -i AWS_CA_BUNDLE=/ca.pem $chroot_bin --userspec=65532:65532 "$ar" /qemu-aarch64-static /s3ferry "$@"; }
arm64_version() { arm64 version | grep -q '^s3ferry '; }
arm64_sync() {
  arm64 sync /data harbor-s3:arm64 --create-bucket -v >"$work/arm-sync.log" 2>&1
  local c=$?
  tail -3 "$work/arm-sync.log"
  [ $c -eq 0 ] && grep 'reading with' "$work/arm-sync.log" && grep -q 'reading with pread' "$work/arm-sync.log"
}
arm64_check() {
  arm64 check /data harbor-s3:arm64 --one-way >"$work/arm-check.log" 2>&1
  local c=$?
  tail -5 "$work/arm-check.log"
  [ $c -eq 0 ] && grep -q '0 differences found' "$work/arm-check.log"
}
check "arm64 (emulated): version" arm64_version
check "arm64 (emulated): sync over TLS as 65532, reading with pread (no io_uring)" arm64_sync
check "arm64 (emulated): check --one-way: 0 differences" arm64_check

# --- 3. image without a Docker engine: umoci -> registry -> pull -> run ---------------------------
img=$work/image
check "image builds with umoci" docker/build-oci.sh "$img" test
layer=$(python3 -c 'import json,sys; d=sys.argv[1]; i=json.load(open(d+"/index.json")); m=i["manifests"][0]["digest"].split(":")[1]; man=json.load(open(d+"/blobs/sha256/"+m)); print(sum(l["size"] for l in man["layers"]))' "$img/oci")
echo "image: compressed layers $layer bytes; docker-archive $(stat -c %s "$img/s3ferry-test-linux-amd64.tar") bytes"
reg_port=$(free_port)
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<CONF
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: 127.0.0.1:$reg_port
CONF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pids+=($!)
wait_port "$reg_port" || { echo "registry did not start"; cat "$work/registry/log"; exit 1; }
mirror=127.0.0.1:$reg_port/mirror/s3ferry:test
check "push the two-platform index to the mirror registry (skopeo copy --all)" \
  skopeo --insecure-policy copy --all --quiet --dest-tls-verify=false "oci:$img/oci:test" "docker://$mirror"
check "the mirror holds an index of linux/amd64 and linux/arm64" bash -c \
  "skopeo inspect --raw --tls-verify=false 'docker://$mirror' | python3 -c 'import json,sys; m=json.load(sys.stdin); p=sorted(x[\"platform\"][\"architecture\"] for x in m[\"manifests\"]); assert p==[\"amd64\",\"arm64\"], p'"
for a in amd64 arm64; do
  skopeo --insecure-policy --override-arch "$a" inspect --config --tls-verify=false "docker://$mirror" >"$work/config-$a.json" 2>/dev/null
  check "pulled per platform ($a): config arch, entrypoint, user" python3 -c "import json; c=json.load(open('$work/config-$a.json')); assert c['architecture']=='$a' and c['os']=='linux', c; assert c['config']['Entrypoint']==['/s3ferry'] and c['config']['User']=='65532:65532', c"
  check "pulled per platform ($a): the binary is $a" bash -c \
    "skopeo --insecure-policy --override-arch $a copy --quiet --src-tls-verify=false 'docker://$mirror' 'oci:$work/pulled-$a:test' && umoci unpack --image '$work/pulled-$a:test' '$work/bundle-$a' >/dev/null && file '$work/bundle-$a/rootfs/s3ferry' | grep -q '$( [ $a = amd64 ] && echo x86-64 || echo 'ARM aarch64')'"
done
check "a docker-archive per platform" test -s "$img/s3ferry-test-linux-arm64.tar"
check "push the docker-archive too (the air-gapped path)" \
  skopeo --insecure-policy copy --quiet --dest-tls-verify=false "docker-archive:$img/s3ferry-test-linux-amd64.tar" "docker://127.0.0.1:$reg_port/mirror/s3ferry:archive"
check "pull it back" skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$mirror" "oci:$work/pulled:test"
skopeo --insecure-policy inspect --config --tls-verify=false "docker://$mirror" >"$work/config.json" 2>/dev/null
check "image config: entrypoint, user, labels, arch" python3 - "$work/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
cfg = c["config"]
assert cfg["Entrypoint"] == ["/s3ferry"], cfg
assert cfg["User"] == "65532:65532", cfg
labels = cfg["Labels"]
for k in ["org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"]:
    assert labels.get(k), (k, labels)
assert labels["org.opencontainers.image.version"] == "test"
assert c["architecture"] == "amd64" and c["os"] == "linux", c
print("config ok:", cfg["Entrypoint"], cfg["User"], sorted(labels))
PY
check "unpack the pulled image" umoci unpack --image "$work/pulled:test" "$work/bundle"
pr=$work/bundle/rootfs
check "image holds only the binary and the CA bundle" bash -c \
  "cd '$pr' && [ \"\$(find . -type f | sort | tr '\n' ' ')\" = './etc/ssl/certs/ca-certificates.crt ./s3ferry ' ]"
check "pulled image: s3ferry version" bash -c "env -i $chroot_bin --userspec=65532:65532 '$pr' /s3ferry version | grep -q '^s3ferry '"
make_root "$pr" "$bin"
check "pulled image: sync + check from its rootfs as 65532" bash -c \
  "env -i AWS_CA_BUNDLE=/ca.pem $chroot_bin --userspec=65532:65532 '$pr' /s3ferry sync /data harbor-s3:pulled --create-bucket && env -i AWS_CA_BUNDLE=/ca.pem $chroot_bin --userspec=65532:65532 '$pr' /s3ferry check /data harbor-s3:pulled --one-way 2>&1 | grep -q '0 differences found'"

# --- 4. Kubernetes manifests, rendered and validated against the API schemas ----------------------
k8s_ok=true
for k in base overlays/indexed-rwx; do
  kubectl kustomize "k8s/$k" >"$work/$(basename "$k").yaml" || k8s_ok=false
done
check "kustomize renders base and the indexed overlay" $k8s_ok
check "manifests validate (kubernetes-validate --strict)" \
  kubernetes-validate --strict --quiet "$work/base.yaml" "$work/indexed-rwx.yaml" k8s/examples/rclone-job-image-swapped.yaml
sed 's/ttlSecondsAfterFinished: 604800/ttlSecondsAfterFinished: "a week"/' "$work/base.yaml" >"$work/broken.yaml"
check "the validator rejects a broken manifest (negative control)" bash -c "! kubernetes-validate --strict --quiet '$work/broken.yaml'"
check "base Job: read-only PVC, non-root, seccomp RuntimeDefault, drop ALL, seed args, metrics and termination message" python3 - "$work/base.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
job = next(d for d in docs if d["kind"] == "Job")
spec = job["spec"]
assert spec["backoffLimit"] > 0 and spec["ttlSecondsAfterFinished"] > 0
pod = spec["template"]["spec"]
assert pod["securityContext"]["runAsNonRoot"] is True
assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
pvc = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
assert pvc["persistentVolumeClaim"]["readOnly"] is True
assert pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
sync, check = pod["initContainers"][0], pod["containers"][0]
assert sync["args"] == ["sync", "/data", "harbor-s3:harbor", "--progress"], sync["args"]
assert check["args"] == ["check", "/data", "harbor-s3:harbor", "--one-way", "--progress"], check["args"]
for c in (sync, check):
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert all(m["readOnly"] for m in c["volumeMounts"])
    assert c["resources"]["limits"]["memory"] == "4Gi"
    assert {"name": "S3FERRY_METRICS_ADDR", "value": "0.0.0.0:9090"} in c["env"], c.get("env")
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
ann = job["spec"]["template"]["metadata"]["annotations"]
assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "9090", ann
PY
check "indexed overlay: Indexed completion mode, shard auto/N = parallelism, no affinity" python3 - "$work/indexed-rwx.yaml" <<'PY'
import sys, yaml
job = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Job")
spec = job["spec"]
assert spec["completionMode"] == "Indexed"
n = spec["completions"]
assert spec["parallelism"] == n
pod = spec["template"]["spec"]
assert "affinity" not in pod
for c in pod["initContainers"] + pod["containers"]:
    assert c["args"][-2:] == ["--shard", f"auto/{n}"], c["args"]
PY

echo "delivery: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
