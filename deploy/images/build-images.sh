#!/usr/bin/env bash
# Builds the stagewise container images here with podman, with no registry:
#   localhost/stagewise-debian:bookworm    the base, made by debootstrap (minbase) and podman import
#   localhost/stagewise-{preprocessor,predictor,postprocessor}:VERSION
#                                          a stage server each, from one runtime layer
#   localhost/stagewise-client:VERSION     the `stagewise` CLI and libstagewise
# and prints each image's size. Between runs podman's store keeps the base and
# localhost/stagewise-build-deps:bookworm (the build stage's packages, rebuilt
# only when the Containerfile's package list changes), so a source change
# redoes only the compile and the runtime layers; older intermediate layers
# are pruned.
# Usage: deploy/images/build-images.sh            (as root; installs podman and debootstrap if missing)
# Environment: SW_PODMAN_ROOT (podman's store; default its own), SW_IMAGE_VERSION (default from the header).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
version=${SW_IMAGE_VERSION:-$(sed -n 's/^#define STAGEWISE_VERSION "\(.*\)"/\1/p' client/stagewise.h)}
base=localhost/stagewise-debian:bookworm

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

podman=(podman --storage-driver vfs)
[ -n "${SW_PODMAN_ROOT:-}" ] && podman+=(--root "$SW_PODMAN_ROOT")

if ! "${podman[@]}" image exists "$base"; then
  rootfs=$(mktemp -d /var/tmp/stagewise-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  echo "== base: debootstrap --variant=minbase bookworm" >&2
  mkdir -p /var/cache/apt/archives
  debootstrap --variant=minbase --cache-dir=/var/cache/apt/archives bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # What the package layer installs against: the archive and its security updates.
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "${podman[@]}" import - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

build() {
  local target=$1 tag=$2
  echo "== $tag (target $target)" >&2
  "${podman[@]}" build --isolation chroot --layers --target "$target" --tag "$tag" \
    --build-arg BASE="$base" --volume /var/cache/apt/archives:/var/cache/apt/archives \
    -f deploy/images/Containerfile "$root" >&2
}
build build-deps localhost/stagewise-build-deps:bookworm
for stage in preprocessor predictor postprocessor; do
  build "$stage" "localhost/stagewise-$stage:$version"
done
build client "localhost/stagewise-client:$version"

# podman's vfs store copies every layer whole, so the previous builds'
# intermediate layers (gigabytes each) go; the base, the build packages and
# the images are tagged and stay.
"${podman[@]}" image prune -f >/dev/null

echo
printf '%-48s %s\n' IMAGE SIZE
for image in stagewise-preprocessor stagewise-predictor stagewise-postprocessor stagewise-client; do
  size=$("${podman[@]}" image inspect --format '{{.Size}}' "localhost/$image:$version")
  printf '%-48s %d MB\n' "localhost/$image:$version" $((size / 1000000))
done
