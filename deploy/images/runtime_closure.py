#!/usr/bin/env python3
"""Copies programs and the shared libraries they really use into a root folder.

`ldd` lists every library the dynamic loader will load; Debian's libtorch_cpu
names ~50 directly (OpenCV, FFmpeg, LevelDB, ZeroMQ, ...) and through them
~330 in all (GDAL, Qt, x265, librsvg, ICU data: ~500 MB), though TorchScript
inference calls into few of them. A library is *used* when a program or a used
library imports a symbol it defines (its undefined dynamic symbols meet the
library's defined ones). Used libraries are copied as they are. A library that
is not used but still named by a used library's DT_NEEDED gets a stub: an empty
shared object with the same SONAME, so the loader is satisfied (nothing can
bind to it: nobody imports from it, and BIND_NOW libraries would refuse to
load if anybody did). Libraries needed only by unused ones are left out.
Libraries loaded with dlopen() are not in ldd's view: name them with --keep.

The result is only as good as the run that proves it: the image smoke test
starts the pipeline from the trimmed root.

Usage: runtime_closure.py ROOT PROGRAM... [--keep LIB_PATH...] [--full]
  --full: copy the whole ldd closure, no stubs (for comparison).
Prints a summary: libraries copied, stubbed, left out, and their sizes.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def ldd(path):
    """SONAME -> resolved path, for everything the loader would load."""
    libs = {}
    for line in run("ldd", path).splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
        else:
            m = re.match(r"\s*(/\S+) \(0x", line)  # the loader itself
            if m:
                libs[os.path.basename(m.group(1))] = m.group(1)
    return libs


def needed(path):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run("readelf", "-d", path))


def symbols(path, defined):
    flag = "--defined-only" if defined else "--undefined-only"
    out = run("nm", "-D", flag, path)
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if not parts:
            continue
        kind, name = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", parts[-1])
        if not defined and kind == "w":
            continue  # weak references bind to nothing without harm
        names.add(name.split("@")[0])
    return names


def version_needs(path):
    """SONAME -> version names `path` requires of it (the loader checks them)."""
    needs, current = {}, None
    for line in run("readelf", "-V", "-W", path).splitlines():
        m = re.search(r"File: (\S+)\s+Cnt:", line)
        if m:
            current = needs.setdefault(m.group(1), set())
            continue
        m = re.search(r"Name: (\S+)\s+Flags:", line)
        if m and current is not None:
            current.add(m.group(1))
    return needs


def make_stub(soname, versions, dest):
    """An empty library called `soname` that defines `versions` (no symbols)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "stub.c")
        with open(src, "w") as f:
            f.write("/* Stands in for a library nothing here calls. */\n")
        cmd = ["cc", "-shared", "-fPIC", "-nostdlib", "-Wl,-soname," + soname, "-o", dest, src]
        if versions:
            script = os.path.join(tmp, "versions.map")
            with open(script, "w") as f:
                f.writelines(f"{v} {{ }};\n" for v in sorted(versions))
            cmd.append("-Wl,--version-script," + script)
        subprocess.run(cmd, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("programs", nargs="+")
    ap.add_argument("--keep", nargs="*", default=[])
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args()

    closure = {}
    for p in a.programs:
        closure.update(ldd(p))
    for k in a.keep:
        closure[os.path.basename(k)] = k
        closure.update(ldd(k))
    defined = {name: symbols(path, True) for name, path in closure.items()}
    undefined = {p: symbols(p, False) for p in list(a.programs) + list(closure.values())}

    # glibc's own libraries are always shipped: small, and other libraries
    # require their version nodes even when no symbol is imported.
    glibc = {n for n in closure if re.match(r"(ld-linux|libc|libm|libdl|libpthread|librt|libresolv)[.-]", n)}
    used = set(os.path.basename(k) for k in a.keep) | glibc
    todo = list(a.programs) + [closure[n] for n in used]
    while todo:
        path = todo.pop()
        wants = undefined[path]
        for name, lib_path in closure.items():
            if name not in used and (a.full or wants & defined[name]):
                used.add(name)
                todo.append(lib_path)
    stubs = set()
    for name in used:
        for n in needed(closure[name]):
            if n not in used:
                stubs.add(n)
    for p in a.programs:
        stubs |= {n for n in needed(p) if n not in used}

    # Each library goes where it was (the loader's default search path for
    # the system's, no ld.so.cache needed); stubs go beside the library
    # they stand in for.
    copied = 0
    for name in sorted(used):
        src = closure[name]
        dest = a.root + os.path.join(os.path.dirname(src), name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(src, dest)
        copied += os.path.getsize(dest)
    wanted_versions = {}
    for name in used:
        for soname, versions in version_needs(closure[name]).items():
            wanted_versions.setdefault(soname, set()).update(versions)
    for name in sorted(stubs):
        src = closure.get(name, "/usr/lib/x86_64-linux-gnu/" + name)
        dest = a.root + os.path.join(os.path.dirname(src), name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        make_stub(name, wanted_versions.get(name, set()), dest)
    left_out = set(closure) - used - stubs
    dropped = sum(os.path.getsize(closure[n]) for n in left_out | stubs)
    print(f"runtime closure: {len(used)} libraries copied ({copied / 1e6:.1f} MB), {len(stubs)} stubbed, "
          f"{len(left_out)} left out ({dropped / 1e6:.1f} MB not shipped)")
    for n in sorted(stubs):
        print(f"  stub: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
