"""An HTTP load generator from outside the project: `wrk` (Debian package), driven with a Lua script.

wrk is a benchmark tool, not a test dependency: scripts/bootstrap.sh does not install it. When it is
missing and this process runs as root with apt-get, `ensure_wrk` installs the `wrk` package (and says
so on stderr); otherwise the caller gets None and reports the gap.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Each thread has its own Lua state: it reads the request bodies (one JSON document a line) once,
# then cycles through them from a thread-specific offset, so the threads do not send the same flight.
LUA = """\
local path, target = nil, nil
local requests, i = {}, 0
local counter = 0

setup = function(thread)
  counter = counter + 1
  thread:set("offset", counter * 97)
end

init = function(args)
  path, target = args[1], args[2]
  local headers = { ["Content-Type"] = "application/json" }
  for body in io.lines(path) do
    requests[#requests + 1] = wrk.format("POST", target, headers, body)
  end
  i = (offset or 0) % #requests
end

request = function()
  i = i % #requests + 1
  return requests[i]
end
"""

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class WrkRun:
    threads: int
    connections: int
    seconds: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: str  # wrk's "Socket errors: ..." line, "" when none

    def describe(self) -> str:
        errors = f", {self.non_2xx} non-2xx" if self.non_2xx else ""
        errors += f", socket errors: {self.socket_errors}" if self.socket_errors else ""
        return (f"wrk -t{self.threads} -c{self.connections} -d{self.seconds:.0f}s: {self.requests} requests, "
                f"{self.requests_per_s:,.0f} req/s, p50 {self.p50_ms:.2f} / p75 {self.p75_ms:.2f} / "
                f"p90 {self.p90_ms:.2f} / p99 {self.p99_ms:.2f} ms{errors}")


def ensure_wrk() -> str | None:
    """Path of the wrk binary, installing the Debian package when possible; None if it cannot be had."""
    found = shutil.which("wrk")
    if found:
        return found
    import os

    if shutil.which("apt-get") and os.geteuid() == 0:
        print("bench: wrk is missing; installing the Debian package `wrk` with apt-get (benchmark only, "
              "not a test dependency)", file=sys.stderr)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(install, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return shutil.which("wrk")
    print("bench: wrk is not installed and cannot be installed here (needs root and apt-get): "
          "the wrk measurements are left out", file=sys.stderr)
    return None


def kserve_infer_body(input_name: str, payload: bytes) -> str:
    """A KServe v2 / Triton HTTP inference request: the bytes as a UINT8 tensor in plain JSON."""
    return json.dumps({"inputs": [{"name": input_name, "shape": [len(payload)], "datatype": "UINT8",
                                   "data": list(payload)}]}, separators=(",", ":"))


def run_wrk(wrk: str, url: str, path: str, bodies: list[str], work_dir: Path, threads: int, connections: int,
            seconds: float, timeout_s: float = 2) -> WrkRun:
    """POST the bodies in turn to url+path for `seconds` with wrk --latency; the parsed result."""
    work_dir.mkdir(parents=True, exist_ok=True)
    script, body_file = work_dir / "post.lua", work_dir / "bodies.jsonl"
    script.write_text(LUA)
    if any("\n" in b for b in bodies):
        raise ValueError("wrk request bodies must be single-line JSON")
    body_file.write_text("\n".join(bodies) + "\n")
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"--timeout={max(1, round(timeout_s))}s",
           "--latency", "-s", str(script), url, "--", str(body_file), path]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return parse_wrk(proc.stdout, threads, connections, seconds)


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(text: str, threads: int, connections: int, seconds: float) -> WrkRun:
    """The numbers of wrk's --latency report (percentiles, requests, Requests/sec, errors)."""
    pct = {int(p): _ms(v, u) for p, v, u in re.findall(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)}
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if len(pct) != 4 or not total or not rps:
        raise RuntimeError(f"could not read wrk's report:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors:\s*(.+)$", text, re.M)
    return WrkRun(threads=threads, connections=connections, seconds=_ms(total.group(2), total.group(3)) / 1000,
                  requests=int(total.group(1)), requests_per_s=float(rps.group(1)), p50_ms=pct[50], p75_ms=pct[75],
                  p90_ms=pct[90], p99_ms=pct[99], non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
                  socket_errors=sock.group(1).strip() if sock else "")
