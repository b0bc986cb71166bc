#!/usr/bin/env bash
# Installs the Debian 12 packages stagewise needs to build, run and test.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
  libtorch-dev libglib2.0-dev libjson-glib-dev libcsv-dev libmicrohttpd-dev
  # libcurl: stagewise-bench's HTTP mode (bench/http_load.c)
  libcurl4-openssl-dev
  # image and audio decoding (common/media): PNG, JPEG, WebP, WAV/FLAC/Ogg
  libpng-dev libjpeg62-turbo-dev libwebp-dev libsndfile1-dev
  # python3-pil: the media tests' reference decoder and image writer (tests/e2e/test_media.py)
  python3-torch python3-numpy python3-grpcio python3-grpc-tools python3-pil
  # the Python client package (client/python): built and installed offline into a venv
  python3-pandas python3-venv python3-pip python3-setuptools python3-wheel
  openssl curl iproute2 clang-format podman debootstrap
  # valgrind: the client library's memcheck run (tests/e2e/test_client_library.py);
  # clang and libclang-rt-14-dev (libclang_rt.fuzzer, libFuzzer): the fuzz targets.
  valgrind clang libclang-rt-14-dev
)
# Node runs the JavaScript client test; any Node >= 18 will do.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
