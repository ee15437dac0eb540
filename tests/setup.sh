#!/usr/bin/env bash
# Install what the tests and the demo need that a fresh machine lacks, idempotently:
#  - the moto S3 server (PyPI), the main test server;
#  - s3s-fs (crates.io), a second S3 implementation, into .tools/ (skipped with --moto-only).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  echo "installing moto[server] from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
fi
if [ "${1:-}" != "--moto-only" ] && [ ! -x .tools/bin/s3s-fs ]; then
  echo "building s3s-fs 0.14.1 from crates.io into .tools/ (about 3 minutes, once)" >&2
  cargo install --quiet s3s-fs@0.14.1 --features binary --locked --root .tools
fi
