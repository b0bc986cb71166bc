"""Generates the gRPC stubs from the repository's proto/ while the package is built.

The protos are compiled as stagewise/_pb/<name>.proto, so the generated modules import each
other as `stagewise._pb.*` and register their descriptors under that file name (no clash with
another package's inference.proto in the same process).
"""

import os
import shutil
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTOS = ("inference.proto", "health.proto")


def generate(out_dir: str) -> None:
    try:
        from grpc_tools import protoc
    except ImportError as e:
        raise SystemExit("building stagewise needs grpc_tools (Debian: python3-grpc-tools; "
                         "pip: grpcio-tools) to compile the protos; install it and build with "
                         "--no-build-isolation") from e
    missing = [p for p in PROTOS if not os.path.isfile(os.path.join(PROTO_DIR, p))]
    if missing:
        raise SystemExit(f"stagewise is built from its repository: {', '.join(missing)} not found in "
                         f"{PROTO_DIR}")
    with tempfile.TemporaryDirectory(prefix="stagewise-protos-") as tmp:
        package_dir = os.path.join(tmp, "stagewise", "_pb")
        os.makedirs(package_dir)
        for p in PROTOS:
            shutil.copy(os.path.join(PROTO_DIR, p), package_dir)
        os.makedirs(out_dir, exist_ok=True)
        args = ["grpc_tools.protoc", f"-I{tmp}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
        args += [os.path.join(package_dir, p) for p in PROTOS]
        if protoc.main(args) != 0:
            raise SystemExit(f"grpc_tools.protoc failed on {', '.join(PROTOS)}")


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        generate(self.build_lib)


setup(cmdclass={"build_py": BuildPyWithStubs})
