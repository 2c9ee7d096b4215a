"""Security-layer overhead: the same ``genaiops serve`` with authentication on ("secured")
and off ("open"), on the bundled chat model, plus the layer's hot path in-process.

Server A (secured) runs the default configuration: API-key authentication, per-key and
per-tenant rate limits (requests and tokens per minute), a token budget, usage accounting
and the hash-chained audit log in SQLite, and Prometheus metrics. Its key is created with
the CLI before it starts, with limits high enough never to refuse, so every bucket, budget
and record is exercised. Server B (open) is identical but for ``[auth] enabled = false``:
requests are served as the anonymous administrator with no limits. Usage, audit and
metrics are recorded on both, so the HTTP difference is authentication plus admission and
settlement; the in-process measurement times the whole hot path (authenticate, admit,
settle, record usage + audit) without HTTP.

Workloads, each with requests to A and B interleaved (A, B, then B, A the next round, so
drift cancels), sequential, over one keep-alive ``httpx.Client`` per server:

* ``GET /v1/models``: the HTTP and authentication path, no model work.
* ``POST /v1/completions``, one greedy token for "Hello": the full inference path.

Target: under 1 ms added at p50.

Usage: python benchmarks/security_overhead.py [--requests-models 2000]
    [--requests-completions 300] [--iterations-inprocess 20000]
Writes benchmarks/results/security_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

import genaiops
from genaiops.config import load_settings
from genaiops.security.principal import Limits, Principal
from genaiops.security.service import SecurityService

MODEL = "smollm2-135m-instruct"
RESULTS = Path(__file__).parent / "results" / "security_overhead.json"
TARGET_MS = 1.0
KEY_LIMITS = {"rpm": 1_000_000, "tpm": 1_000_000_000, "budget_tokens": 100_000_000_000}
SECURED_TOML = f'bundled_models = ["{MODEL}"]\n'
OPEN_TOML = SECURED_TOML + "[auth]\nenabled = false\n"
COMPLETION_BODY = {"model": MODEL, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
WARMUP = {"models": 100, "completions": 10}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarise(samples: list[float], digits: int = 3) -> dict[str, Any]:
    return {
        "n": len(samples),
        "p50": round(statistics.median(samples), digits),
        "p95": round(pct(samples, 0.95), digits),
        "mean": round(statistics.fmean(samples), digits),
    }


def versions() -> dict[str, str]:
    found = {"genaiops": genaiops.__version__}
    for dist in ("httpx", "fastapi", "uvicorn", "sqlalchemy", "llama_cpp_python"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


# -- servers -----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    config: Path
    env: dict[str, str]
    headers: dict[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def genaiops_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "genaiops", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"genaiops {' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr}"
        )
    return done.stdout


def prepare(tmp: Path, name: str, config: str) -> tuple[Path, dict[str, str]]:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(config)
    env = os.environ | {"GENAIOPS_DATA_DIR": str(tmp / f"{name}-data")}
    env.pop("GENAIOPS_CONFIG", None)
    return cfg, env


def create_key(tmp: Path, cfg: Path, env: dict[str, str]) -> str:
    limits = [f"--{k.replace('_', '-')}={v}" for k, v in KEY_LIMITS.items()]
    out = genaiops_cli(
        ["keys", "create", "--tenant", "bench", "--role", "user", *limits, "--json"]
        + ["--config", str(cfg)],
        env,
        tmp,
    )
    return str(json.loads(out)["key"])


def start_server(
    tmp: Path, name: str, cfg: Path, env: dict[str, str], headers: dict[str, str]
) -> Server:
    port = free_port()
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "genaiops", "serve", "--config", str(cfg), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log, cfg, env, headers)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server {name} exited ({process.returncode}); log: {log}")
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"server {name} not ready in 180 s; log: {log}")


def stop_server(server: Server) -> None:
    if server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


# -- HTTP workloads ----------------------------------------------------------------------


def request(client: httpx.Client, workload: str) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    if workload == "models":
        r = client.get("/v1/models")
    else:
        r = client.post("/v1/completions", json=COMPLETION_BODY)
    elapsed = (time.perf_counter() - start) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"{workload}: HTTP {r.status_code}: {r.text[:500]}")
    return elapsed, r


def run_workload(
    servers: list[Server], clients: dict[str, httpx.Client], workload: str, n: int
) -> dict[str, Any]:
    for server in servers:
        for _ in range(WARMUP[workload]):
            request(clients[server.name], workload)
    samples: dict[str, list[float]] = {s.name: [] for s in servers}
    last: dict[str, httpx.Response] = {}
    for i in range(n):
        for server in servers if i % 2 == 0 else servers[::-1]:
            ms, last[server.name] = request(clients[server.name], workload)
            samples[server.name].append(ms)
    result: dict[str, Any] = {name: summarise(s) for name, s in samples.items()}
    secured, open_ = result["secured"], result["open"]
    result["overhead_ms"] = {
        "p50": round(secured["p50"] - open_["p50"], 3),
        "p95": round(secured["p95"] - open_["p95"], 3),
        "mean": round(secured["mean"] - open_["mean"], 3),
    }
    result["p50_overhead_ms_under_target"] = result["overhead_ms"]["p50"] < TARGET_MS
    result["ratelimit_headers_secured"] = {
        k: v for k, v in last["secured"].headers.items() if k.startswith("x-ratelimit-")
    }
    return result


def check_auth(secured: Server) -> dict[str, int]:
    """The secured server must refuse a missing and a wrong key (else nothing is measured)."""
    missing = httpx.get(secured.url + "/v1/models", timeout=10).status_code
    wrong = httpx.get(
        secured.url + "/v1/models", headers={"Authorization": "Bearer nope"}, timeout=10
    ).status_code
    if missing != 401 or wrong != 401:
        raise RuntimeError(f"secured server did not refuse bad credentials: {missing}, {wrong}")
    return {"missing_key_status": missing, "wrong_key_status": wrong}


def verify_audit_cli(tmp: Path, server: Server) -> dict[str, Any]:
    """After the server stopped: the audit chain it wrote verifies from the CLI."""
    out = genaiops_cli(
        ["audit", "verify", "--json", "--config", str(server.config)], server.env, tmp
    )
    result: dict[str, Any] = json.loads(out)
    return result


def bench_http(tmp: Path) -> dict[str, Any]:
    secured_cfg, secured_env = prepare(tmp, "secured", SECURED_TOML)
    open_cfg, open_env = prepare(tmp, "open", OPEN_TOML)
    secret = create_key(tmp, secured_cfg, secured_env)
    servers: list[Server] = []
    clients: dict[str, httpx.Client] = {}
    results: dict[str, Any] = {}
    try:
        servers.append(
            start_server(
                tmp, "secured", secured_cfg, secured_env, {"Authorization": f"Bearer {secret}"}
            )
        )
        servers.append(start_server(tmp, "open", open_cfg, open_env, {}))
        results["auth_check"] = check_auth(servers[0])
        for s in servers:
            clients[s.name] = httpx.Client(base_url=s.url, headers=s.headers, timeout=120)
        for workload, n in (
            ("models", ARGS.requests_models),
            ("completions", ARGS.requests_completions),
        ):
            print(f"  {workload}: {n} requests per server (+{WARMUP[workload]} warm-up) ...")
            results[workload] = run_workload(servers, clients, workload, n)
    finally:
        for client in clients.values():
            client.close()
        for server in servers:
            stop_server(server)
    results["audit_after_shutdown"] = {s.name: verify_audit_cli(tmp, s) for s in servers}
    return results


# -- in-process hot path -----------------------------------------------------------------


async def hot_path(service: SecurityService, secret: str, n: int) -> dict[str, Any]:
    authorization = "Bearer " + secret
    stages: dict[str, list[float]] = {"authenticate": [], "admit": [], "settle": [], "record": []}
    totals: list[float] = []
    clock = time.perf_counter
    for i in range(n):
        t0 = clock()
        principal = await service.authenticate(authorization)
        t1 = clock()
        admission = await service.admit(principal, 20)
        t2 = clock()
        await service.settle(admission, 20, 5)
        t3 = clock()
        service.record_inference(
            principal,
            model="m",
            status=200,
            request_id=f"r{i}",
            latency_s=0.01,
            prompt_tokens=20,
            completion_tokens=5,
        )
        t4 = clock()
        totals.append((t4 - t0) * 1e6)
        for name, a, b in (
            ("authenticate", t0, t1),
            ("admit", t1, t2),
            ("settle", t2, t3),
            ("record", t3, t4),
        ):
            stages[name].append((b - a) * 1e6)
    return {
        "per_request_us": summarise(totals, 2),
        "stages_us": {name: summarise(s, 2) for name, s in stages.items()},
    }


def bench_inprocess(tmp: Path, n: int) -> dict[str, Any]:
    settings = load_settings(data_dir=tmp / "inprocess-data")
    service = SecurityService(settings)
    service.start()
    try:
        admin = Principal(tenant="system", role="admin", actor="bench", via="cli")
        new = service.create_key(admin, tenant="bench", role="user", limits=Limits(**KEY_LIMITS))

        async def measure() -> tuple[dict[str, Any], float]:
            await hot_path(service, new.secret, min(n, 500))  # warm-up
            start = time.perf_counter()
            timed = await hot_path(service, new.secret, n)
            return timed, time.perf_counter() - start

        result, wall = asyncio.run(measure())
        flush_start = time.perf_counter()
        service.recorder.flush()
        flush_ms = (time.perf_counter() - flush_start) * 1000
        verify_start = time.perf_counter()
        verification = service.verify_audit()
        verify_ms = (time.perf_counter() - verify_start) * 1000
    finally:
        asyncio.run(service.close())
    return result | {
        "iterations": n,
        "loop_wall_s": round(wall, 3),
        "requests_per_s": round(n / wall, 1),
        "flush_after_loop_ms": round(flush_ms, 2),
        "audit_records_written": service.recorder.written,
        "audit_verify": verification.as_dict(),
        "audit_verify_ms": round(verify_ms, 2),
        "settings": {
            "auth": settings.auth.model_dump(mode="json"),
            "limits": settings.limits.model_dump(mode="json"),
            "storage": settings.storage.model_dump(mode="json") | {"url": "sqlite (data dir)"},
        },
    }


# -- report ------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> None:
    print()
    print(f"{'workload':>12} {'server':>8} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for workload in ("models", "completions"):
        run = results["http"][workload]
        for side in ("secured", "open"):
            r = run[side]
            print(
                f"{workload:>12} {side:>8} {r['n']:>6} {r['p50']:>8.3f} {r['p95']:>8.3f} "
                f"{r['mean']:>8.3f}"
            )
        o = run["overhead_ms"]
        verdict = "met" if run["p50_overhead_ms_under_target"] else "MISSED"
        print(
            f"{workload:>12} {'added':>8} {'':>6} {o['p50']:>8.3f} {o['p95']:>8.3f} "
            f"{o['mean']:>8.3f}   target under {TARGET_MS:g} ms added at p50: {verdict}"
        )
    ip = results["inprocess"]
    total = ip["per_request_us"]
    print()
    print(
        f"in-process hot path ({ip['iterations']} iterations): "
        f"mean {total['mean']} us, p50 {total['p50']} us, p95 {total['p95']} us per request "
        f"({ip['requests_per_s']} requests/s on one event loop)"
    )
    for name, s in ip["stages_us"].items():
        print(f"  {name:>12}: mean {s['mean']:>8} us  p50 {s['p50']:>8} us  p95 {s['p95']:>8} us")
    v = ip["audit_verify"]
    print(
        f"  flush after loop: {ip['flush_after_loop_ms']} ms; audit chain verifies: {v['ok']} "
        f"({v['records']} records, verified in {ip['audit_verify_ms']} ms)"
    )
    audits = results["http"]["audit_after_shutdown"]
    print(
        "  server audit chains after shutdown: "
        + ", ".join(f"{k} ok={v['ok']} ({v['records']} records)" for k, v in audits.items())
    )
    print(f"saved {ARGS.output}")


def main() -> None:
    results: dict[str, Any] = {
        "model": MODEL,
        "target": f"under {TARGET_MS:g} ms added at p50",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "settings": {
            "secured_toml": SECURED_TOML,
            "open_toml": OPEN_TOML,
            "key": {"tenant": "bench", "role": "user"} | KEY_LIMITS,
            "completion_body": COMPLETION_BODY,
            "warmup_requests": WARMUP,
            "requests_models": ARGS.requests_models,
            "requests_completions": ARGS.requests_completions,
            "iterations_inprocess": ARGS.iterations_inprocess,
            "client": "one keep-alive httpx.Client per server, sequential, interleaved",
        },
    }
    with tempfile.TemporaryDirectory(prefix="genaiops-secbench-") as name:
        tmp = Path(name)
        print(f"HTTP workloads (server logs in {tmp}) ...")
        try:
            results["http"] = bench_http(tmp)
        except RuntimeError as exc:
            for log in sorted(tmp.glob("*.log")):
                print(f"--- {log} (tail) ---\n{log.read_text()[-4000:]}", file=sys.stderr)
            raise SystemExit(f"HTTP benchmark failed: {exc}") from exc
        print(f"in-process hot path: {ARGS.iterations_inprocess} iterations ...")
        results["inprocess"] = bench_inprocess(tmp, ARGS.iterations_inprocess)
    results["verdict"] = {
        w: {
            "p50_overhead_ms": results["http"][w]["overhead_ms"]["p50"],
            "p50_overhead_ms < 1.0": results["http"][w]["p50_overhead_ms_under_target"],
        }
        for w in ("models", "completions")
    }
    ARGS.output.parent.mkdir(parents=True, exist_ok=True)
    ARGS.output.write_text(json.dumps(results, indent=2) + "\n")
    report(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-models", type=int, default=2000)
    parser.add_argument("--requests-completions", type=int, default=300)
    parser.add_argument("--iterations-inprocess", type=int, default=20000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    ARGS = parser.parse_args()
    main()
