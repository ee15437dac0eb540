#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, then formatting, lints,
# unit tests and the integration tests (which start their own S3 server on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
export S3FERRY_S3S_FS="$PWD/.tools/bin/s3s-fs"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
