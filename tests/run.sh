#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (tests/setup.sh), then
# formatting, lints, unit tests, integration tests against real S3 servers on 127.0.0.1, and the
# delivery tests (static binary, chroot with TLS and DNS, image round trip, manifests), and
# the registry round trip (filesystem registry -> s3ferry -> registry on the s3 driver).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
export S3FERRY_S3S_FS="$PWD/.tools/bin/s3s-fs"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
tests/delivery.sh
S3FERRY_BIN=$(docker/build-static.sh) tests/roundtrip.sh
