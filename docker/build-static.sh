#!/usr/bin/env bash
# Build the fully static s3ferry binary for one architecture: glibc linked statically
# (+crt-static), no NSS needed (name resolution is pure Rust), and randomness from the
# getrandom(2) call itself (the default looks getrandom up with dlsym, which a static binary
# cannot, and then wants /dev/urandom). Prints the binary's path.
#   docker/build-static.sh [ARCH]      ARCH: amd64|x86_64 or arm64|aarch64 (default: the host's)
#
# Toolchains, chosen explicitly:
#  - the host's own architecture builds with the project's toolchain (cargo and rustc on PATH);
#  - arm64 on an amd64 host cross-builds with Debian's packages, installed here when missing:
#    Debian's compiler (rustc-web, /usr/bin/rustc) with its aarch64 standard library
#    (libstd-rust-web-dev:arm64), and gcc-aarch64-linux-gnu with libc6-dev-arm64-cross as
#    linker and C compiler. A rustup target is not needed (nor downloadable offline). Its
#    artefacts go to target/debian-rustc, apart from the project toolchain's.
# docker/Dockerfile stays the path for `docker buildx` where the network allows rustup.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-$(uname -m)}
case "$arch" in
  amd64 | x86_64) target=x86_64-unknown-linux-gnu ;;
  arm64 | aarch64) target=aarch64-unknown-linux-gnu ;;
  *) echo "build-static.sh: unknown architecture $arch: use amd64 or arm64" >&2; exit 2 ;;
esac
export RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"'

if [ "$target" = "$(uname -m)-unknown-linux-gnu" ]; then
  cargo build --release --locked --quiet --target "$target"
  echo "$PWD/target/$target/release/s3ferry"
  exit 0
fi

if [ "$target" != aarch64-unknown-linux-gnu ] || [ "$(uname -m)" != x86_64 ]; then
  echo "build-static.sh: cross-building $target on $(uname -m) is not set up: build on a $arch machine" >&2
  exit 2
fi
if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] ||
  ! command -v aarch64-linux-gnu-gcc >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/libc.a ]; then
  echo "installing Debian's Rust and the aarch64 cross toolchain (rustc-web, libstd-rust-web-dev:arm64, gcc-aarch64-linux-gnu)" >&2
  export DEBIAN_FRONTEND=noninteractive
  dpkg --add-architecture arm64
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends rustc-web libstd-rust-web-dev:arm64 \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_DIR=$PWD/target/debian-rustc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
cargo build --release --locked --quiet --target "$target"
echo "$CARGO_TARGET_DIR/$target/release/s3ferry"
