"""Helpers for the operations tests (test_operations.py): a stage server launcher that keeps
stderr apart and takes environment variables, a Prometheus text scraper, a polling helper and
a small openssl PKI. Everything runs on loopback with ephemeral ports."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Callable, Dict, List, Optional, Tuple

import grpc

import harness

BUILD_DIR = harness.BUILD_DIR
EXAMPLE_DIR = harness.EXAMPLE_DIR
MAX_MESSAGE = harness.MAX_MESSAGE
# Keep gRPC off any proxy the environment names: everything here is loopback.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE),
                   ("grpc.max_send_message_length", MAX_MESSAGE),
                   ("grpc.enable_http_proxy", 0)]


def binary(stage: str) -> str:
    return os.path.join(BUILD_DIR, f"stagewise-{stage}")


def clean_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The test's environment without STAGEWISE_* settings (and proxies), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STAGEWISE_") and k.lower() not in ("http_proxy", "https_proxy", "grpc_proxy",
                                                                   "all_proxy")}
    env.update(extra or {})
    return env


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
    """Polls `predicate` until it returns something true; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run_cli(stage: str, args: List[str], env: Optional[Dict[str, str]] = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
    """Runs a stage binary to completion (--help, bad settings): rc, stdout, stderr."""
    return subprocess.run([binary(stage)] + args, capture_output=True, text=True, timeout=timeout,
                          env=clean_env(env))


class Server:
    """One stage server process. stderr goes to its own file (stdout to another), so tests can
    read exactly what the server logged; the listening line is found in kv or JSON form."""

    def __init__(self, stage: str, args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None,
                 model_dir: str = EXAMPLE_DIR, listen: str = "127.0.0.1:0", start_timeout: float = 60,
                 preexec_fn=None):
        self.stage = stage
        fd, self.stderr_path = tempfile.mkstemp(prefix=f"sw-ops-{stage}-", suffix=".err")
        os.close(fd)
        fd, self.stdout_path = tempfile.mkstemp(prefix=f"sw-ops-{stage}-", suffix=".out")
        os.close(fd)
        cmd = [binary(stage)]
        if model_dir is not None:
            cmd += ["--model-dir", model_dir]
        if listen is not None:
            cmd += ["--listen", listen]
        cmd += list(args or [])
        self.cmd = cmd
        self.proc = None
        try:
            with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=clean_env(env),
                                             preexec_fn=preexec_fn)
            self.port, self.metrics_port, self.listening = self._wait_listening(start_timeout)
        except BaseException:
            self.cleanup()  # the log is in the exception's message
            raise
        self.target = f"127.0.0.1:{self.port}"

    # -- startup ---------------------------------------------------------------------------
    def listening_line(self) -> Optional[Tuple[int, int, dict]]:
        for line in self.log_text().splitlines():
            if "listening" not in line:
                continue
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("event") == "listening":
                    return int(obj["port"]), int(obj.get("metrics_port", 0)), obj
            else:
                m = re.search(r"event=listening .*?\bport=(\d+)", line)
                if m:
                    fields = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
                    return int(m.group(1)), int(fields.get("metrics_port", "0")), fields
        return None

    def _wait_listening(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.listening_line()
            if found:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.stage} exited with {self.proc.returncode}:\n{self.log_text()}")
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError(f"{self.stage} did not start within {timeout}s:\n{self.log_text()}")

    # -- logs --------------------------------------------------------------------------------
    def log_text(self) -> str:
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stdout_text(self) -> str:
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_log(self, pattern: str, timeout: float = 10) -> re.Match:
        """The first match of regex `pattern` in the log, waiting for it to appear."""
        return wait_for(lambda: re.search(pattern, self.log_text()), timeout,
                        f"/{pattern}/ in the {self.stage} log")

    def access_lines(self) -> Dict[str, List[Dict[str, str]]]:
        """kv access-log lines (event=infer) by request id, each as its fields."""
        by_id: Dict[str, List[Dict[str, str]]] = {}
        for line in self.log_text().splitlines():
            if "event=infer " not in line:
                continue
            fields = {k: v[1:-1] if v.startswith('"') else v
                      for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', line)}
            by_id.setdefault(fields.get("id", ""), []).append(fields)
        return by_id

    # -- clients -----------------------------------------------------------------------------
    def channel(self, target: Optional[str] = None):
        return grpc.insecure_channel(target or self.target, options=CHANNEL_OPTIONS)

    def secure_channel(self, credentials, server_name: str = "localhost"):
        return grpc.secure_channel(self.target, credentials,
                                   options=CHANNEL_OPTIONS + [("grpc.ssl_target_name_override", server_name)])

    def scrape(self, path: str = "/metrics") -> "Metrics":
        assert self.metrics_port, f"{self.stage} was started without --metrics-listen"
        return Metrics(http_get(self.metrics_port, path)[1])

    # -- lifecycle ---------------------------------------------------------------------------
    def signal(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> Optional[int]:
        """The exit status, or None if it is still running after `timeout`."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; a kill after `timeout` gives -9."""
        self.signal(signal.SIGTERM)
        if self.wait(timeout) is None:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in (self.stderr_path, self.stdout_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(port: int, path: str, method: str = "GET", timeout: float = 10) -> Tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with _NO_PROXY.open(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """A parsed Prometheus text exposition."""

    def __init__(self, text: str):
        self.text = text
        self.samples: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            if m is None:
                raise AssertionError(f"not a Prometheus sample line: {line!r}")
            labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
            self.samples[(m.group(1), labels)] = float(m.group(3))

    def get(self, name: str, **labels) -> Optional[float]:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def value(self, name: str, **labels) -> float:
        """The sample's value; a missing sample counts as 0 (counters not yet incremented)."""
        v = self.get(name, **labels)
        return 0.0 if v is None else v

    def with_name(self, name: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


# -- TLS -------------------------------------------------------------------------------------

def _openssl(*args: str, cwd: str):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: str) -> Dict[str, str]:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate, and a
    second CA with a client certificate of its own (one the first CA does not vouch for).
    Returns paths by name."""
    d = directory
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-days", "2", "-subj", f"/CN=stagewise test {ca}", cwd=d)
    for name, ca, cn, ext in (("server", "ca", "localhost", "server.ext"),
                              ("client", "ca", "stagewise test client", "client.ext"),
                              ("other-client", "other-ca", "stranger", "client.ext")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=d)
    return {n: os.path.join(d, n) for n in (
        "ca.pem", "server.pem", "server.key", "client.pem", "client.key",
        "other-ca.pem", "other-client.pem", "other-client.key")}


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
