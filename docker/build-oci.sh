#!/usr/bin/env bash
# Build the s3ferry image without a Docker engine, with umoci (Debian package), producing the
# same image as docker/Dockerfile: the static binary at /s3ferry, a CA bundle, user
# 65532:65532, ENTRYPOINT ["/s3ferry"], OCI labels.
#   docker/build-oci.sh OUT_DIR [TAG]
# writes OUT_DIR/oci (an OCI image layout, tag TAG) and OUT_DIR/s3ferry-TAG-linux-amd64.tar
# (a docker-archive: `docker load -i` it, or `skopeo copy docker-archive:FILE docker://MIRROR/...`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: docker/build-oci.sh OUT_DIR [TAG]}")
tag=${2:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
bin=$(docker/build-static.sh)
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)

rm -rf "$out/oci" "$out/bundle"
mkdir -p "$out"
umoci init --layout "$out/oci"
umoci new --image "$out/oci:$tag"
umoci unpack --image "$out/oci:$tag" "$out/bundle"
install -D -m 0755 "$bin" "$out/bundle/rootfs/s3ferry"
install -D -m 0644 "$ca" "$out/bundle/rootfs/etc/ssl/certs/ca-certificates.crt"
umoci repack --image "$out/oci:$tag" "$out/bundle"
umoci config --image "$out/oci:$tag" \
  --os linux --architecture amd64 \
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
umoci gc --layout "$out/oci"
rm -rf "$out/bundle"
rm -f "$out/s3ferry-$tag-linux-amd64.tar"
skopeo --insecure-policy copy --quiet "oci:$out/oci:$tag" "docker-archive:$out/s3ferry-$tag-linux-amd64.tar:s3ferry:$tag"
echo "$out/oci:$tag"
