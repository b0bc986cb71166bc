"""What the CLI's end-to-end tests share: the three stages chained on loopback for the whole
class, a temporary folder for each test's files, and outputs of the in-process reference as
plain Python."""

import os
import shutil
import tempfile
import unittest
from typing import Any, List

import torch

import harness
import reference


def to_python(value: Any, row: int) -> Any:
    """Row `row` of a postprocessor output as plain Python."""
    if isinstance(value, torch.Tensor):
        return value[row].tolist()
    item = value[row]
    return item.tolist() if isinstance(item, torch.Tensor) else item


class ChainCase(unittest.TestCase):
    """Starts postprocessor, predictor and preprocessor chained with --next (cls.pre is the
    entry), loads the reference, and checks every server exits 0 at the end."""

    TMP_PREFIX = "sw-chain-"

    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        cls.tmp = tempfile.mkdtemp(prefix=cls.TMP_PREFIX)
        cls.servers = []
        try:
            cls.post = cls.start("postprocessor", [])
            cls.pred = cls.start("predictor", ["--next", cls.post.target])
            cls.pre = cls.start("preprocessor", ["--next", cls.pred.target])
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls, stage: str, args: List[str]) -> harness.StageServer:
        server = harness.StageServer(stage, args=args)
        cls.servers.append(server)
        return server

    @classmethod
    def tearDownClass(cls):
        codes = [s.stop() for s in reversed(cls.servers)]
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert all(code == 0 for code in codes), codes

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, f"{self.id().rsplit('.', 1)[-1]}-{name}")
