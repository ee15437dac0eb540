#!/usr/bin/env bash
# The inner loop, a few minutes: formatting, lints, unit tests and the integration tests that
# need only moto (installed from PyPI if missing) and the misbehaving server of our own. The
# full suite (tests/run.sh) adds s3s-fs, Ceph RGW, the delivery tests for both architectures
# and the registry round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh --moto-only
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --lib --test cli --test check --test sync --test faults --test reliability \
  --test dropin --test registry --test io_engine --test shard --test restore
