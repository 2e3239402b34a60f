"""A real Triton Inference Server process, started from the nvidia-pytriton wheel (no Docker).

`TritonServer` is a context manager: the `flightdeck serve` command and the test fixtures
use the same code. It runs tritonserver in explicit model-control mode against the model
repository (a local folder, or s3://... which Triton reads itself), waits until the server
is ready, and stops it with SIGTERM, then SIGKILL of its process group.

The model-control API (load/unload/repository index) and the other admin APIs are
restricted: a request must carry the header ADMIN_HEADER with the admin key. The key comes
from FLIGHTDECK_TRITON_ADMIN_KEY (a Kubernetes Secret in production); on the local profile,
when that is unset, a random key is created once in FLIGHTDECK_HOME/triton/admin.key
(mode 0600) so that `flightdeck deploy` in another process can read it. It is never in the
repo. Triton only takes the key on its command line: the command line carries a placeholder that
a preloaded library fills in before tritonserver's main() (argv_key.py), so the key is not in the
process list; it reaches the server through its environment, readable by its owner only.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from components.contracts.errors import StageFailed
from components.serving.triton import argv_key

log = logging.getLogger(__name__)

ADMIN_HEADER = "flightdeck-admin-key"
ADMIN_KEY_ENV = "FLIGHTDECK_TRITON_ADMIN_KEY"
# The APIs only the platform may call. Health, metadata, model config, statistics and inference stay open.
RESTRICTED_APIS = ("model-repository", "shared-memory", "trace", "logging")
DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}


class TritonNotAvailable(StageFailed):
    """The Triton binary or one of its parts is missing, or the server did not start."""


def triton_home(settings=None) -> Path:
    from components.core.settings import load_settings

    settings = settings or load_settings()
    return settings.home_path / "triton"


def admin_key(settings=None, create: bool = False) -> str | None:
    """The model-control key: the environment first, then (local profile) the key file of FLIGHTDECK_HOME."""
    key = os.environ.get(ADMIN_KEY_ENV, "").strip()
    if key:
        return key
    from components.core.settings import load_settings

    settings = settings or load_settings()
    if settings.profile != "local":
        return None
    path = triton_home(settings) / "admin.key"
    if path.is_file():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    key = secrets.token_urlsafe(24)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


@dataclass(frozen=True)
class TritonDist:
    """Where the wheel keeps the server, its backends, the python-backend stub and the shared libraries."""

    binary: Path
    backends: Path
    stub: Path
    libs: Path

    @classmethod
    def find(cls, site: Path | None = None) -> TritonDist:
        """The wheel installed in `site` (a site-packages folder, or the wheel unpacked there); default this interpreter's."""
        site = Path(site) if site else Path(sysconfig.get_paths()["purelib"])
        root = site / "pytriton" / "tritonserver"
        pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
        dist = cls(
            binary=root / "bin" / "tritonserver",
            backends=root / "backends",
            stub=root / "python_backend_stubs" / pyver / "triton_python_backend_stub",
            libs=site / "nvidia_pytriton.libs",
        )
        missing = [str(p) for p in (dist.binary, dist.backends / "python", dist.stub, dist.libs) if not p.exists()]
        if missing:
            raise TritonNotAvailable(
                f"the Triton server from the nvidia-pytriton wheel is incomplete or not installed: missing "
                f"{', '.join(missing)}. Install the project's environment (scripts/bootstrap.sh)."
            )
        return dist

    def backend_dir(self, work: Path) -> Path:
        """A backend folder with the python backend and the stub for this Python beside it.

        The wheel keeps the stubs apart; the python backend looks for its stub in its own
        folder. We assemble that folder under the server's work dir instead of writing into the venv.
        """
        out = work / "backends"
        py = out / "python"
        py.mkdir(parents=True, exist_ok=True)
        for src in (*sorted((self.backends / "python").iterdir()), self.stub):
            dst = py / src.name
            if not dst.exists():
                shutil.copy2(src, dst)
        return out


def _free(port: int, host: str) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class TritonServer:
    model_repository: str  # a local folder or an s3:// URI
    http_port: int = DEFAULT_PORTS["http"]
    grpc_port: int = DEFAULT_PORTS["grpc"]
    metrics_port: int = DEFAULT_PORTS["metrics"]
    host: str = "127.0.0.1"  # 0.0.0.0 in a container
    admin_key: str | None = None  # None: model control stays unrestricted (tests of that refusal need a key)
    work_dir: Path | None = None  # backends and the server log; default FLIGHTDECK_HOME/triton
    load_models: tuple[str, ...] = ()  # loaded at startup (explicit mode loads nothing else)
    startup_timeout_s: float = 90.0
    exit_timeout_s: int = 10
    log_verbose: int = 0
    extra_args: tuple[str, ...] = ()
    site_packages: Path | None = None  # where the nvidia-pytriton wheel is; None: this interpreter's site-packages
    proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    log_path: Path | None = field(default=None, init=False)

    # -- lifecycle --------------------------------------------------------------------
    def command(self, backend_dir: Path) -> list[str]:
        dist = TritonDist.find(self.site_packages)
        cmd = [
            str(dist.binary),
            f"--model-repository={self.model_repository}",
            "--model-control-mode=explicit",
            f"--backend-directory={backend_dir}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true",
            "--strict-readiness=false",  # "ready" = the server answers; model readiness is checked per model
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
        ]
        if self.admin_key:
            apis = ",".join(RESTRICTED_APIS)
            cmd += [
                f"--http-restricted-api={apis}:{ADMIN_HEADER}={argv_key.PLACEHOLDER}",
                f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={argv_key.PLACEHOLDER}",
            ]
        cmd += [f"--load-model={m}" for m in self.load_models]
        return cmd + list(self.extra_args)

    def environment(self, work: Path | None = None) -> dict[str, str]:
        dist = TritonDist.find(self.site_packages)
        env = dict(os.environ)
        env.pop(argv_key.KEY_ENV, None)
        if self.admin_key:  # filled into the command line by the preloaded library, which then unsets it
            try:
                env["LD_PRELOAD"] = str(argv_key.preload_library(work or self._work()))
            except argv_key.ArgvKeyUnavailable as exc:
                raise TritonNotAvailable(str(exc)) from exc
            env[argv_key.KEY_ENV] = self.admin_key
        # The stub links libpython3.X.so.1.0 and finds the system one by default, while its sys.path
        # is this interpreter's: with different patch releases, C extensions of the stdlib fail
        # (e.g. _ssl: "undefined symbol: _PyModule_Add", so Feast cannot be imported). Put this
        # interpreter's own libpython first when it has one.
        # LIBDIR is where the build put it; a relocated build (python-build-standalone, uv's Pythons) has it
        # under its own prefix instead.
        soname = sysconfig.get_config_var("INSTSONAME") or "-"
        dirs = (sysconfig.get_config_var("LIBDIR") or "", str(Path(sys.base_prefix, "lib")))
        own = [d for d in dirs if d and Path(d, soname).exists()][:1]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(dist.libs), *own, env.get("LD_LIBRARY_PATH", "")]))
        # The python-backend stub runs the first `python3` on PATH: it must be this venv's, which has torch.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        # The stub imports model.py from the repository: no __pycache__ there (it would make the
        # model look modified, and so reloaded, on every later load).
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def start(self) -> TritonServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        for name, port in (("http", self.http_port), ("grpc", self.grpc_port), ("metrics", self.metrics_port)):
            if not _free(port, self.host):
                raise TritonNotAvailable(
                    f"cannot start Triton: the {name} port {self.host}:{port} is already in use "
                    f"(another Triton or service?). Choose other ports (--{name}-port)."
                )
        work = self._work()
        work.mkdir(parents=True, exist_ok=True)
        if not str(self.model_repository).startswith("s3://"):
            Path(self.model_repository).mkdir(parents=True, exist_ok=True)
        backend_dir = TritonDist.find(self.site_packages).backend_dir(work)
        (work / "logs").mkdir(exist_ok=True)
        self.log_path = work / "logs" / f"tritonserver-{self.http_port}.log"
        with open(self.log_path, "ab") as logf:
            # Own session: on a hard stop the whole group (server + python-backend stubs) goes.
            self.proc = subprocess.Popen(
                self.command(backend_dir), stdout=logf, stderr=subprocess.STDOUT, env=self.environment(work),
                start_new_session=True,
            )
        try:
            self.wait_ready(self.startup_timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info("Triton ready: %s", self.endpoints)
        return self

    def _work(self) -> Path:
        return Path(self.work_dir) if self.work_dir else triton_home()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://{self._client_host}:{self.http_port}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise TritonNotAvailable(
                    f"tritonserver exited with code {self.proc.returncode} while starting; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise TritonNotAvailable(
            f"tritonserver did not become ready within {timeout_s:.0f} s; last lines of {self.log_path}:\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM, wait for in-flight requests (exit timeout), then SIGKILL the process group."""
        proc = self.proc
        if proc is None:
            return None
        timeout_s = timeout_s if timeout_s is not None else self.exit_timeout_s + 5
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver (pid %s) did not stop in %.0f s: SIGKILL", proc.pid, timeout_s)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        # Stubs of the python backend are in the server's session; none may outlive it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc = None
        return proc.returncode

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- facts ------------------------------------------------------------------------
    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def endpoints(self) -> dict[str, str]:
        h = self._client_host
        return {
            "http": f"{h}:{self.http_port}",
            "grpc": f"{h}:{self.grpc_port}",
            "metrics": f"http://{h}:{self.metrics_port}/metrics",
        }

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def rss_bytes(self, include_children: bool = True) -> int:
        """Resident memory of the server (and of its python-backend stub processes)."""
        if self.proc is None:
            return 0
        pids = [self.proc.pid]
        if include_children:
            pids += _descendants(self.proc.pid)
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except (FileNotFoundError, ProcessLookupError):
                continue
        return total

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(parts[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
