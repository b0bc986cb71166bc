"""Starts and stops real stage servers for tests: loopback, ephemeral ports, every process
stopped (and its exit status checked) at the end."""

import os
import re
import signal
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

import grpc

BUILD_DIR = os.environ.get("SW_BUILD_DIR", "build")
EXAMPLE_DIR = os.environ.get("SW_EXAMPLE_DIR", os.path.join(BUILD_DIR, "models", "example"))
STAGES = ("preprocessor", "predictor", "postprocessor")
MAX_MESSAGE = 256 * 1024 * 1024


class StageServer:
    def __init__(self, stage: str, model_dir: str = EXAMPLE_DIR, args: Optional[List[str]] = None,
                 listen: str = "127.0.0.1:0"):
        """`listen` is the --listen address: HOST:PORT (port 0 picks one, read back from the
        log) or a gRPC unix socket address (unix:PATH), which is then the target as given."""
        self.stage = stage
        self.log = tempfile.NamedTemporaryFile(prefix=f"sw-{stage}-", suffix=".log", delete=False)
        binary = os.path.join(BUILD_DIR, f"stagewise-{stage}")
        cmd = [binary, "--model-dir", model_dir, "--listen", listen] + (args or [])
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        port = self._wait_for_port()
        if listen.startswith("unix:") or listen.startswith("unix-abstract:"):
            self.port = None  # the log's port means nothing for a socket path
            self.target = listen
        else:
            self.port = port
            self.target = f"{listen.rsplit(':', 1)[0]}:{self.port}"

    def _wait_for_port(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            m = re.search(r"event=listening .*?\bport=(\d+)", text)
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.stage} exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"{self.stage} did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def channel(self):
        return grpc.insecure_channel(self.target, options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE)])

    def kill(self) -> int:
        """SIGKILL, no drain: a crashed replica. Returns the exit status (-9)."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit status (a kill after timeout gives -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)
        return self.proc.returncode


class Pipeline:
    """The three stages of one export, each its own server."""

    def __init__(self, model_dir: str = EXAMPLE_DIR, args: Optional[Dict[str, List[str]]] = None):
        self.servers: Dict[str, StageServer] = {}
        try:
            for stage in STAGES:
                self.servers[stage] = StageServer(stage, model_dir, (args or {}).get(stage))
        except Exception:
            self.stop()
            raise

    def __getitem__(self, stage: str) -> StageServer:
        return self.servers[stage]

    def stop(self) -> Dict[str, int]:
        return {stage: s.stop() for stage, s in self.servers.items()}
