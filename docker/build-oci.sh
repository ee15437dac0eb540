#!/usr/bin/env bash
# Build the s3ferry image for linux/amd64 and linux/arm64 without a Docker engine, with umoci
# (Debian package): the same image as docker/Dockerfile for each platform (the static binary at
# /s3ferry, a CA bundle, user 65532:65532, ENTRYPOINT ["/s3ferry"], OCI labels), and one OCI
# image index holding both.
#   docker/build-oci.sh OUT_DIR [TAG]
# writes
#   OUT_DIR/oci                          an OCI image layout: tag TAG is the two-platform index,
#                                        TAG-amd64 and TAG-arm64 the single images
#   OUT_DIR/s3ferry-TAG-linux-ARCH.tar   a docker-archive per platform (air-gapped transfer:
#                                        `docker load -i`, or skopeo copy docker-archive:...)
# Push the index with `skopeo copy --all oci:OUT_DIR/oci:TAG docker://MIRROR/s3ferry:TAG`.
# ARCHES="amd64" (or "arm64") builds only those platforms.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: docker/build-oci.sh OUT_DIR [TAG]}")
tag=${2:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
arches=${ARCHES:-amd64 arm64}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)

rm -rf "$out/oci" "$out/bundle"
mkdir -p "$out"
umoci init --layout "$out/oci"
for arch in $arches; do
  bin=$(docker/build-static.sh "$arch")
  ref="$out/oci:$tag-$arch"
  umoci new --image "$ref"
  umoci unpack --image "$ref" "$out/bundle"
  install -D -m 0755 "$bin" "$out/bundle/rootfs/s3ferry"
  install -D -m 0644 "$ca" "$out/bundle/rootfs/etc/ssl/certs/ca-certificates.crt"
  umoci repack --image "$ref" "$out/bundle"
  rm -rf "$out/bundle"
  umoci config --image "$ref" \
    --os linux --architecture "$arch" \
    --config.entrypoint /s3ferry \
    --config.user 65532:65532 \
    --config.workingdir / \
    --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --config.label "org.opencontainers.image.title=s3ferry" \
    --config.label "org.opencontainers.image.source=https://github.com/s3ferry/s3ferry" \
    --config.label "org.opencontainers.image.version=$tag" \
    --config.label "org.opencontainers.image.revision=$revision" \
    --config.label "org.opencontainers.image.created=$created" \
    --config.label "org.opencontainers.image.licenses=Apache-2.0"
done
umoci gc --layout "$out/oci"

# The index: one more blob listing each platform's manifest, tagged TAG in index.json.
python3 - "$out/oci" "$tag" $arches <<'PY'
import hashlib, json, os, sys
layout, tag, arches = sys.argv[1], sys.argv[2], sys.argv[3:]
top_path = os.path.join(layout, "index.json")
top = json.load(open(top_path))
by_ref = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in top["manifests"]}
manifests = []
for arch in arches:
    m = dict(by_ref[f"{tag}-{arch}"])
    m.pop("annotations", None)
    m["platform"] = {"architecture": arch, "os": "linux"}
    manifests.append(m)
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
blob = json.dumps(index, separators=(",", ":")).encode()
digest = hashlib.sha256(blob).hexdigest()
with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
    f.write(blob)
top["manifests"] = [m for m in top["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] != tag]
top["manifests"].append({
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "digest": f"sha256:{digest}",
    "size": len(blob),
    "annotations": {"org.opencontainers.image.ref.name": tag},
})
with open(top_path, "w") as f:
    json.dump(top, f)
PY

for arch in $arches; do
  rm -f "$out/s3ferry-$tag-linux-$arch.tar"
  skopeo --insecure-policy copy --quiet "oci:$out/oci:$tag-$arch" \
    "docker-archive:$out/s3ferry-$tag-linux-$arch.tar:s3ferry:$tag"
done
echo "$out/oci:$tag"
