#!/usr/bin/env bash
# Install what the tests and the demo need that a fresh machine lacks: the moto S3 server from
# PyPI. Idempotent and quiet when everything is already there.
set -euo pipefail
if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  echo "installing moto[server] from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
fi
