#!/usr/bin/env bash
# Builds the container image quarry:dev (or $IMAGE) from the Dockerfile and prints its size.
#
#   scripts/image.sh            # quarry:dev
#   IMAGE=quarry:1.2 scripts/image.sh
#
# 1. Both binaries, release, statically linked against glibc (-C target-feature=+crt-static on
#    x86_64-unknown-linux-gnu; no musl target needed), in their own target dir (target/image) so
#    the normal builds stay valid. The binaries resolve no host names, so static glibc needs no
#    NSS modules at run time.
# 2. A build context holding only the Dockerfile and the two binaries, given to `docker build`:
#    the Dockerfile's one stage is FROM scratch, so nothing is pulled (no registry needed).
# Needs: cargo (the repository's toolchain), docker.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-quarry:dev}
TARGET=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="$ROOT/target/image"

die() { echo "image.sh: $*" >&2; exit 1; }
command -v docker >/dev/null 2>&1 || die "docker not found on PATH"
[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported (static glibc target $TARGET)"

echo "== static binaries ($TARGET, +crt-static) in $CARGO_TARGET_DIR"
# --target keeps RUSTFLAGS off build scripts and proc macros (they stay dynamic host binaries).
# Symbols and debug info are stripped: the image carries no debugger anyway.
RUSTFLAGS="-C target-feature=+crt-static" \
  CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
  cargo build --release --locked --target "$TARGET" -p quarry-server -p quarry-etl
bin="$CARGO_TARGET_DIR/$TARGET/release"
for b in quarry-server quarry-etl; do
  # A dynamically linked binary would fail in the image with a bare "no such file or directory".
  if file_out=$(LC_ALL=C readelf -l "$bin/$b" 2>/dev/null) && grep -q 'INTERP' <<<"$file_out"; then
    die "$bin/$b is dynamically linked (has a program interpreter)"
  fi
done

ctx="$CARGO_TARGET_DIR/context"
rm -rf "$ctx"
mkdir -p "$ctx"
cp "$ROOT/Dockerfile" "$ctx/Dockerfile"
cp "$bin/quarry-server" "$bin/quarry-etl" "$ctx/"
chmod 0755 "$ctx/quarry-server" "$ctx/quarry-etl"

echo "== docker build -t $IMAGE"
docker build --quiet -t "$IMAGE" "$ctx" >/dev/null
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $size bytes ($(( (size + 524287) / 1048576 )) MiB)"
