"""The Kubernetes manifests as a user renders them: `kubectl kustomize` on every overlay
under deploy/k8s/overlays, each result validated against the Kubernetes API schemas and
checked for the wiring the README promises (validate_manifests.mjs).

Installs the pinned npm packages (package.json, package-lock.json) with `npm ci` into
SW_DEPLOY_NODE_DIR, a build folder, so the source tree stays clean.
Environment: SW_KUBECTL, SW_NODE, SW_NPM (default: on PATH), SW_DEPLOY_NODE_DIR.
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OVERLAYS = os.path.join(ROOT, "deploy", "k8s", "overlays")
KUBECTL = os.environ.get("SW_KUBECTL", "kubectl")
NODE = os.environ.get("SW_NODE", "node")
NPM = os.environ.get("SW_NPM", "npm")
NODE_DIR = os.environ.get("SW_DEPLOY_NODE_DIR", os.path.join(tempfile.gettempdir(), "stagewise-manifest-check"))


def main() -> int:
    os.makedirs(NODE_DIR, exist_ok=True)
    for name in ("package.json", "package-lock.json", "validate_manifests.mjs"):
        shutil.copyfile(os.path.join(HERE, name), os.path.join(NODE_DIR, name))
    subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=NODE_DIR, check=True,
                   timeout=300, stdout=subprocess.DEVNULL)
    args = []
    for overlay in sorted(os.listdir(OVERLAYS)):
        rendered = os.path.join(NODE_DIR, overlay + ".yaml")
        with open(rendered, "w") as out:
            subprocess.run([KUBECTL, "kustomize", os.path.join(OVERLAYS, overlay)], stdout=out, check=True,
                           timeout=120)
        args.append(f"{overlay}={rendered}")
    if len(args) < 2:
        print(f"expected the cpu and gpu overlays in {OVERLAYS}", file=sys.stderr)
        return 1
    return subprocess.run([NODE, "validate_manifests.mjs", *args], cwd=NODE_DIR, timeout=120).returncode


if __name__ == "__main__":
    sys.exit(main())
