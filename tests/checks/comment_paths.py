#!/usr/bin/env python3
"""Fails when a comment in a C or C++ source names a file that does not exist.

A comment that points a reader at `docs/DESIGN.md` or `channel.h` must stay
true when files move. A name counts as a file reference when it ends in a
source or document extension; it resolves when it is a path in the
repository, the base name of a tracked file, a system header under
/usr/include, or one of the files of a Ludwig export (which live in the
user's model folder, not here). Run from the repository root.
"""
import os
import re
import subprocess
import sys

EXTENSIONS = ("c", "h", "cpp", "hpp", "md", "py", "sh", "proto", "mjs", "txt", "in", "json")
NAME = re.compile(r"(?<![\w./-])((?:\.{0,2}/)?[\w][\w.+-]*(?:/[\w.+-]+)*\.(?:%s))(?![\w/])" % "|".join(EXTENSIONS))
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
# Files of a Ludwig export folder, named where the code reads them.
EXPORT_FILES = {"model_hyperparameters.json", "training_set_metadata.json"}


def tracked_files():
    out = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def resolves(name, paths, basenames):
    if name in EXPORT_FILES or name in paths or name.rstrip("/") in paths:
        return True
    if "/" not in name:
        return name in basenames or os.path.exists(os.path.join("/usr/include", name))
    if os.path.exists(os.path.join("/usr/include", name)):
        return True
    # A path may be written from a folder's point of view ("unit/torch/x.py").
    return any(p.endswith("/" + name) for p in paths)


def main():
    files = tracked_files()
    paths = set(files)
    for f in files:  # folders count as paths too
        parts = f.split("/")
        for i in range(1, len(parts)):
            paths.add("/".join(parts[:i]))
    basenames = {os.path.basename(f) for f in files}
    problems = []
    sources = [f for f in files if f.endswith((".c", ".h", ".cpp", ".hpp"))]
    for source in sources:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
        for m in COMMENT.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            for name in NAME.findall(m.group(0)):
                if not resolves(name, paths, basenames):
                    problems.append("%s:%d: comment names '%s', which does not exist" % (source, line, name))
    for p in problems:
        print(p)
    print("comment paths: %d sources checked, %d dangling references" % (len(sources), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
