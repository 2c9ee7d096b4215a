"""Rebuild the inserted-attack passages of the prompt-injection dataset.

For every benign knowledge-base passage of the train split that has no written poisoned
copy, one copy with a training attack prompt of its language inserted at a sentence
boundary (seeded, so the rows are the same every time). Only train-split rows are read,
so nothing of the held-out splits leaks in. The copies are marked ``"source":
"inserted"`` and replaced on every run.

Usage: python scripts/insert_attacks.py [--dataset PATH]  (default: the shipped dataset)
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

DATASET = Path(__file__).parents[1] / "src/genaiops/guardrails/injection/data/prompts.jsonl"
CATEGORIES = {"instruction_override", "prompt_extraction", "policy_bypass",
              "jailbreak_persona", "role_reassignment"}  # fmt: skip
BOUNDARY = re.compile(r"(?<=[.!?])\s+")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    path = parser.parse_args().dataset
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r.get("source") != "inserted"]
    attacks = {
        lang: [
            r["text"]
            for r in rows
            if r["split"] == "train"
            and r["label"] == 1
            and r["category"] in CATEGORIES
            and 40 <= len(r["text"]) <= 220
            and r["lang"] == lang
        ]  # fmt: skip
        for lang in ("en", "es", "pt")
    }
    written = {r["group"] for r in rows if r["category"] == "indirect_passage"}
    rng = random.Random(7)
    inserted = []
    for r in rows:
        if r["category"] != "benign_passage" or r["split"] != "train" or r["group"] in written:
            continue
        attack = rng.choice(attacks[r["lang"]])
        parts = BOUNDARY.split(r["text"])
        k = rng.randint(0, len(parts))
        inserted.append({"text": " ".join(parts[:k] + [attack] + parts[k:]), "label": 1,
                         "lang": r["lang"], "category": "indirect_passage", "split": "train",
                         "group": r["group"], "source": "inserted"})  # fmt: skip
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows + inserted]
    path.write_text("".join(lines), encoding="utf-8")
    print(f"{len(inserted)} inserted-attack passages written to {path}")  # noqa: T201


if __name__ == "__main__":
    main()
