#!/usr/bin/env bash
# The images run: builds them (deploy/images/build-images.sh; cached layers
# make a rebuild cheap), then starts the three stages from the stage images'
# root filesystems and sends example rows through the one-call pipeline with
# the CLI from the client image. `podman run` cannot run here, so each
# program runs as a container runtime would start it: `podman image mount`,
# a private mount namespace with /proc, /dev and the export mounted in, and
# chroot as the image's non-root user. The predictions must equal those the
# host build's CLI gets from the same servers, and the images must hold no
# shell, package manager, compiler or Python.
# Usage: smoke_images.sh BUILD_DIR   (as root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
version=$(sed -n 's/^#define STAGEWISE_VERSION "\(.*\)"/\1/p' "$root/client/stagewise.h")
podman=(podman --storage-driver vfs)
[ -n "${SW_PODMAN_ROOT:-}" ] && podman+=(--root "$SW_PODMAN_ROOT")

"$root/deploy/images/build-images.sh"

work=$(mktemp -d /tmp/stagewise-smoke.XXXXXX)
pids=()
mounted=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for image in "${mounted[@]}"; do "${podman[@]}" image unmount "$image" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

mount_image() {
  local image=$1
  mounted+=("$image")
  "${podman[@]}" image mount "$image"
}

# Runs PROGRAM ARGS... inside the root filesystem $1 as uid 10001, with the
# example export at /models/export and $work at /work. With exec_in set (in a
# background subshell), the subshell becomes the program, so the PID recorded
# for it is the program's and cleanup's TERM reaches it rather than leaving it
# running without a parent.
run_in() {
  local rootfs=$1; shift
  ${exec_in:+exec} unshare --mount --propagation private -- /bin/sh -c '
    set -e
    rootfs=$1; export_dir=$2; work=$3; shift 3
    mount -t proc proc "$rootfs/proc"
    mount --rbind /dev "$rootfs/dev"
    mount --bind -o ro "$export_dir" "$rootfs/models/export"
    mount --bind "$work" "$rootfs/tmp"
    exec chroot --userspec=10001:10001 "$rootfs" "$@"' sh "$rootfs" "$build/models/example" "$work" "$@"
}

stage_root=$(mount_image "localhost/stagewise-predictor:$version")
client_root=$(mount_image "localhost/stagewise-client:$version")
for tool in bin/sh bin/bash usr/bin/apt-get usr/bin/dpkg usr/bin/gcc usr/bin/cc usr/bin/python3; do
  for r in "$stage_root" "$client_root"; do
    if [ -e "$r/$tool" ]; then echo "image holds /$tool" >&2; exit 1; fi
  done
done
chmod 1777 "$work"

port=""
start_stage() {
  local stage=$1; shift
  (exec_in=1 run_in "$stage_root" "/usr/local/bin/stagewise-$stage" --model-dir /models/export --name example \
    --listen 127.0.0.1:0 "$@") \
    >"$work/$stage.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do
    port=$(sed -n 's/.*event=listening .* port=\([0-9]*\) .*/\1/p' "$work/$stage.log")
    [ -n "$port" ] && return
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/$stage.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$stage did not start from its image" >&2; exit 1
}
start_stage postprocessor; post=$port
start_stage predictor --next "127.0.0.1:$post"; pred=$port
start_stage preprocessor --next "127.0.0.1:$pred"; pre=$port

/usr/bin/python3 "$root/tests/fixtures/example_rows.py" 21 >"$work/rows.csv"
run_in "$client_root" /usr/local/bin/stagewise predict --target "127.0.0.1:$pre" --model example \
  --input /tmp/rows.csv --format csv >"$work/from-image.csv"
"$build/stagewise" predict --target "127.0.0.1:$pre" --model example --input "$work/rows.csv" --format csv \
  >"$work/from-host.csv"
rows=$(($(wc -l <"$work/from-image.csv") - 1))
if [ "$rows" -ne 21 ] || ! cmp -s "$work/from-image.csv" "$work/from-host.csv"; then
  echo "predictions from the images differ from the host build's:" >&2
  diff "$work/from-image.csv" "$work/from-host.csv" >&2 || true
  exit 1
fi
for stage in preprocessor predictor postprocessor; do
  grep -q 'event=listening' "$work/$stage.log"
done
echo "images: the pipeline ran from the stage images and the client image; $rows rows predicted as on the host"
