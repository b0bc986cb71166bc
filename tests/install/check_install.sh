#!/usr/bin/env bash
# libstagewise as a user gets it: configures the client alone
# (SW_BUILD_SERVERS=OFF, so neither libtorch nor Python torch is looked for),
# builds and installs it into a prefix, then builds a program with nothing
# but `pkg-config --cflags --libs stagewise` and runs it. The program checks
# the version, the public status codes, and that a call to a port nobody
# listens on comes back UNAVAILABLE as an error value, not a crash.
# Usage: check_install.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
cmake -S "$src" -B "$work/build" -DSW_BUILD_SERVERS=OFF -DSW_BUILD_TESTS=OFF -DSW_WERROR=ON \
  -DSW_PYTHON=/nonexistent/python3 -DCMAKE_INSTALL_PREFIX="$work/prefix" >"$work/configure.log"
if grep -q '^Torch_DIR\|^TORCH_LIBRARY' "$work/build/CMakeCache.txt"; then
  echo "a client-only configure looked for torch" >&2
  exit 1
fi
cmake --build "$work/build" -j"$(nproc)" >"$work/build.log"
cmake --install "$work/build" >"$work/install.log"
prefix=$work/prefix
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -1 | xargs dirname)
test -f "$prefix/include/stagewise.h"
test -x "$prefix/bin/stagewise"
ls "$libdir"/libstagewise.so.* >/dev/null

cat >"$work/user.c" <<'PROGRAM'
#include <stagewise.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    if (strcmp(stagewise_version(), STAGEWISE_VERSION) != 0) {
        fprintf(stderr, "library %s, header %s\n", stagewise_version(), STAGEWISE_VERSION);
        return 1;
    }
    if (strcmp(stagewise_code_name(STAGEWISE_CODE_UNAVAILABLE), "UNAVAILABLE") != 0)
        return 1;
    stagewise_client_options options = {.target = "127.0.0.1:1", .timeout_ms = 2000};
    stagewise_error *error = NULL;
    stagewise_client *client = stagewise_client_new(&options, &error);
    if (client == NULL) {
        fprintf(stderr, "client: %s\n", stagewise_error_message(error));
        return 1;
    }
    int serving = stagewise_health_check(client, "", &error);
    int code = error ? stagewise_error_code(error) : -1;
    printf("stagewise %s: health %d, %s\n", stagewise_version(), serving, error ? stagewise_code_name(code) : "no error");
    stagewise_error_free(error);
    stagewise_client_free(client);
    return serving == -1 && (code == STAGEWISE_CODE_UNAVAILABLE || code == STAGEWISE_CODE_DEADLINE_EXCEEDED) ? 0 : 1;
}
PROGRAM
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$work/user" "$work/user.c" $(pkg-config --cflags --libs stagewise)
LD_LIBRARY_PATH="$libdir" "$work/user"
"$prefix/bin/stagewise" --help >/dev/null
echo "install: libstagewise $(pkg-config --modversion stagewise) installed and used through pkg-config"
