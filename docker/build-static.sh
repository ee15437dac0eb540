#!/usr/bin/env bash
# Build the fully static x86_64 binary: glibc linked statically (+crt-static), no NSS needed
# (name resolution is pure Rust), and randomness from the getrandom(2) call itself (the default
# looks getrandom up with dlsym, which a static binary cannot, and then wants /dev/urandom).
# Prints the binary's path.
#   docker/build-static.sh            -> target/x86_64-unknown-linux-gnu/release/s3ferry
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' cargo build --release --locked --quiet --target "$target"
echo "$PWD/target/$target/release/s3ferry"
