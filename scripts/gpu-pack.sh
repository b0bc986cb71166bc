#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a CUDA machine that has PyTorch but
# no Debian packages: the binaries built here, every runtime library they
# load except libtorch and the torch shim (rebuilt there against that
# PyTorch), glib's headers and the static sw_base for building the shim, the
# example export and the benchmark requests. Writes .device/ (ignored by
# git; carry it to the device).
#
#   scripts/gpu-pack.sh            # then, on the device: scripts/gpu-check.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SW_BUILD_DIR:-$ROOT/build}
PACK=$ROOT/.device
ROWS=${GPU_BATCH_ROWS:-"1 64 1024"}

"$ROOT/scripts/install-deps.sh"
[[ -f $BUILD/CMakeCache.txt ]] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD" -j"$(nproc)"

rm -rf "$PACK"
mkdir -p "$PACK/bin" "$PACK/lib" "$PACK/include" "$PACK/requests"
BINARIES=(stagewise-preprocessor stagewise-predictor stagewise-postprocessor stagewise-bench stagewise)
for b in "${BINARIES[@]}"; do cp "$BUILD/$b" "$PACK/bin/"; done
cp "$BUILD/common/base/libsw_base.a" "$BUILD/client/libstagewise.so"* "$PACK/lib/"
cp -r "$BUILD/models/example" "$PACK/example"

# Runtime libraries: everything the binaries load, less the C/C++ runtime
# (the device has its own) and libtorch with everything only it needs (the
# shim built there brings PyTorch's).
declare -A seen=()
copy_needed() {
    local file=$1 lib path
    for lib in $(objdump -p "$file" | awk '/NEEDED/{print $2}'); do
        case $lib in
        libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux* | libstdc++.so.* | libgcc_s.so.*) continue ;;
        libstagewise_torch.so | libtorch* | libc10* | libstagewise.so*) continue ;;
        esac
        [[ -n ${seen[$lib]:-} ]] && continue
        seen[$lib]=1
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ && !found {print $NF; found = 1}')
        [[ -n $path ]] || { echo "gpu-pack: cannot find $lib" >&2; exit 1; }
        cp -L "$path" "$PACK/lib/$lib"
        copy_needed "$path"
    done
}
for b in "${BINARIES[@]}"; do copy_needed "$BUILD/$b"; done
copy_needed "$BUILD/client/libstagewise.so"
ln -s libglib-2.0.so.0 "$PACK/lib/libglib-2.0.so" # for linking the shim

cp -r /usr/include/glib-2.0 "$PACK/include/glib-2.0"
cp /usr/lib/x86_64-linux-gnu/glib-2.0/include/glibconfig.h "$PACK/include/"

# Predictor requests of each size, and CSV rows for the CLI (built with the
# CPU preprocessor here, so the device needs no Python packages but torch).
for r in $ROWS; do
    "$BUILD/stagewise-bench" --rows-from-export "$BUILD/models/example" --rows-per-request "$r" \
        --write-request "$PACK/requests/predictor-r$r.pb" --write-stage predictor
done
/usr/bin/python3 "$ROOT/tests/fixtures/example_rows.py" 200 >"$PACK/rows.csv"
du -sh "$PACK"
