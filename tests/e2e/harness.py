"""Starts and stops real stage servers for tests: loopback, ephemeral ports, every process
stopped (and its exit status checked) at the end."""

import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import grpc

BUILD_DIR = os.environ.get("SW_BUILD_DIR", "build")
EXAMPLE_DIR = os.environ.get("SW_EXAMPLE_DIR", os.path.join(BUILD_DIR, "models", "example"))
STAGES = ("preprocessor", "predictor", "postprocessor")
MAX_MESSAGE = 256 * 1024 * 1024
# A sanitizer build's tests (tests/sanitize/run.sh) name a folder for sanitizer reports. Each
# server writes its ASan and LSan reports there (ASAN_OPTIONS log_path: <stage>.<pid>), where
# they outlive its log, which stop() deletes; GCC's UBSan writes to stderr whatever log_path
# says, so stop() and kill() copy a log that holds a report there too (<stage>.<pid>.log) and
# print every report. Findings are fatal (ASan's default, the build's -fno-sanitize-recover), so
# the exit status the tests check is not 0 either; run.sh fails if the folder is not empty.
SANITIZER_LOG_DIR = os.environ.get("SW_SANITIZER_LOG_DIR")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: ")


class StageServer:
    def __init__(self, stage: str, model_dir: str = EXAMPLE_DIR, args: Optional[List[str]] = None,
                 listen: str = "127.0.0.1:0"):
        """`listen` is the --listen address: HOST:PORT (port 0 picks one, read back from the
        log) or a gRPC unix socket address (unix:PATH), which is then the target as given."""
        self.stage = stage
        self.log = tempfile.NamedTemporaryFile(prefix=f"sw-{stage}-", suffix=".log", delete=False)
        binary = os.path.join(BUILD_DIR, f"stagewise-{stage}")
        cmd = [binary, "--model-dir", model_dir, "--listen", listen] + (args or [])
        self._sanitizer_report: Optional[str] = None
        env = None
        if SANITIZER_LOG_DIR:
            os.makedirs(SANITIZER_LOG_DIR, exist_ok=True)
            env = dict(os.environ)
            log_path = os.path.join(SANITIZER_LOG_DIR, stage)
            options = [env.get("ASAN_OPTIONS"), f"log_path={log_path}"]
            env["ASAN_OPTIONS"] = ":".join(o for o in options if o)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
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
                raise RuntimeError(f"{self.stage} exited with {self.proc.returncode}:\n{text}"
                                   f"{self.sanitizer_report()}")
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

    def sanitizer_report(self) -> str:
        """What the sanitizers reported for this server once it has exited ("" for none); its log
        is copied to SANITIZER_LOG_DIR when it holds a report."""
        if not SANITIZER_LOG_DIR or self.proc.returncode is None:
            return ""
        pid = self.proc.pid
        if os.path.exists(self.log.name):
            text = self.log_text()
            if any(m in text for m in SANITIZER_MARKERS):
                copy = os.path.join(SANITIZER_LOG_DIR, f"{self.stage}.{pid}.log")
                with open(copy, "w", encoding="utf-8") as f:
                    f.write(text)
        reports = []
        for path in sorted(glob.glob(os.path.join(SANITIZER_LOG_DIR, f"{self.stage}.{pid}*"))):
            with open(path, encoding="utf-8", errors="replace") as f:
                reports.append(f"==== {path}\n{f.read()}")
        return "\n".join(reports)

    def _check_sanitizers(self) -> bool:
        """Prints this server's sanitizer reports (once); True when there are any."""
        if self._sanitizer_report is None:
            self._sanitizer_report = self.sanitizer_report()
            if self._sanitizer_report:
                sys.stderr.write(f"sanitizer report from {self.stage} (pid {self.proc.pid}, exit status "
                                 f"{self.proc.returncode}):\n{self._sanitizer_report}\n")
        return bool(self._sanitizer_report)

    def kill(self) -> int:
        """SIGKILL, no drain: a crashed replica. Returns the exit status (-9)."""
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self._check_sanitizers()
        return code

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit status (a kill after timeout gives -9; never 0
        after a sanitizer report)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        reported = self._check_sanitizers()
        if os.path.exists(self.log.name):
            os.unlink(self.log.name)
        return 1 if reported and self.proc.returncode == 0 else self.proc.returncode


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
