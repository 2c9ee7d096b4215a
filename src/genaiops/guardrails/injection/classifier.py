"""The learned half of the injection guard: hashed n-grams and a logistic regression.

This module owns the dataset loader, training (``train``), the persisted model format and
prediction. Features are character n-grams (2-5, ``char_wb``) and word n-grams (1-2) of the
normalised scan text (``Normalized.scan_text``: folded text, leetspeak windows, decoded
payloads), hashed by ``HashingVectorizer`` so no vocabulary is stored. The model is
``LogisticRegression`` (liblinear, balanced classes). Features are binary (presence, not
counts) and each block is L2-normalised; C is picked by grouped cross-validation on the
train split (average precision of the out-of-fold probabilities).

Operating point: the cut on the probability (``cut``) is chosen on the same out-of-fold
predictions, combined with the rules as the guard combines them: the lowest cut whose
false-positive rate stays within 0.04 (0.05 target minus 0.01 kept for unseen text), i.e.
the most recall the budget allows. ``calibrate`` maps the probability piecewise-linearly so
that ``cut`` lands on 0.5, the guard's default threshold; rule weights live on the same
scale, so "0.5 or more" means "flag" for both detectors. Cross-validated recall of the
combined guard is optimistic (the rules were written looking at the train split); the
test split is the honest number.

Persistence is deliberately not pickle: ``model.npz`` holds the coefficients (float16),
the intercept, the hashing settings, the probability cut and the training metrics, and
``numpy.load(..., allow_pickle=False)`` reads it. Prediction is
``sigmoid(X @ coef + intercept)`` with X rebuilt by the same hashing settings, so loading
runs no code from the file. float16 costs nothing measurable (scores move by ~1e-3) and
keeps the file small; ``train`` evaluates the rounded model, so its metrics are exactly
what the shipped file does.

Long texts are scored in overlapping windows and the maximum is kept: an injection buried
in a long document is not diluted by the benign text around it (at the price of more
chances for a false positive on very long inputs). Only the first ``max_chars``
characters of the scan text are classified; the rules still see everything.

Prediction builds the same features without scikit-learn's transformers (``features.py``,
``HashedNgrams``); training uses ``HashingVectorizer``.

scikit-learn is imported inside functions: importing the guard does not import it (the
server loads the guards at start-up, so no request pays for it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from genaiops.guardrails.injection import semantic
from genaiops.guardrails.injection.features import WORD_TOKENS, HashedNgrams
from genaiops.guardrails.injection.normalize import Normalized, normalize

FORMAT_VERSION = 2  # 2 adds the semantic (embedding) half; version 1 files still load
CHAR_NGRAMS = (2, 5)
WORD_NGRAMS = (1, 2)
N_CHAR = 2**18
N_WORD = 2**18
WINDOW = 2000  # characters per classified window (training prompts are shorter)
STEP = 1500
MAX_CHARS = 100_000
C_GRID = (4.0, 16.0, 64.0)
CV_FOLDS = 5
TARGET_RECALL = 0.90
TARGET_FPR = 0.05
FPR_MARGIN = 0.01
GUARD_THRESHOLD = 0.5  # the guard's default; the calibrated cut lands here


def _data_dir() -> Path:
    return Path(str(resources.files("genaiops.guardrails.injection") / "data"))


def default_dataset_path() -> Path:
    return _data_dir() / "prompts.jsonl"


def default_model_path() -> Path:
    return _data_dir() / "model.npz"


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    lang: str
    category: str
    split: str
    group: str


_FIELDS = ("text", "label", "lang", "category", "split")


def load_dataset(path: Path | None = None) -> list[Example]:
    """Read the labelled prompts (one JSON object per line). A file that cannot be read,
    or a line that is not such an object, is an InvalidRequest naming the line."""
    from genaiops.errors import InvalidRequest

    source = path or default_dataset_path()
    rows: list[Example] = []
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read the dataset {source}: {exc}", param="dataset") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{source}: line {number}: not JSON ({exc.msg})") from None
        missing = [k for k in _FIELDS if not isinstance(r, dict) or r.get(k) in (None, "")]
        if missing:
            raise InvalidRequest(f"{source}: line {number}: missing {', '.join(missing)}")
        if r["label"] not in (0, 1) or not isinstance(r["split"], str):
            raise InvalidRequest(
                f"{source}: line {number}: label must be 0 or 1 and split a name (train, test, ...)"
            )
        # Variants of one prompt share a group (translations too, minus the language
        # prefix), so cross-validation never sees a prompt's twin in another fold.
        group = str(r.get("group") or r["text"]).split("-", 1)[-1]
        rows.append(
            Example(
                str(r["text"]),
                int(r["label"]),
                str(r["lang"]),
                str(r["category"]),
                r["split"],
                group,
            )  # fmt: skip
        )
    for split in ("train", "test"):
        labels = {e.label for e in rows if e.split == split}
        if labels != {0, 1}:
            raise InvalidRequest(
                f"{source}: the {split} split needs examples of both labels (0 and 1)"
            )
    return rows


@dataclass
class InjectionModel:
    coef: np.ndarray  # float32, N_CHAR + N_WORD
    intercept: float
    cut: float  # probability that maps to GUARD_THRESHOLD
    char_ngrams: tuple[int, int] = CHAR_NGRAMS
    word_ngrams: tuple[int, int] = WORD_NGRAMS
    n_char: int = N_CHAR
    n_word: int = N_WORD
    binary: bool = True
    metrics: dict[str, Any] = field(default_factory=dict)
    # The semantic half (``semantic.py``): coefficients over the 512-d embedding, and the
    # n-gram share of the mixed probability (1.0: n-grams only).
    emb_coef: np.ndarray | None = None
    emb_intercept: float = 0.0
    ngram_weight: float = 1.0
    _vectorizers: tuple[Any, Any] | None = field(default=None, repr=False)
    _hashed: HashedNgrams | None = field(default=None, repr=False)

    def hashed(self) -> HashedNgrams:
        if self._hashed is None:
            self._hashed = HashedNgrams(
                self.char_ngrams, self.word_ngrams, self.n_char, self.n_word, self.binary
            )
        return self._hashed

    def vectorizers(self) -> tuple[Any, Any]:
        if self._vectorizers is None:
            self._vectorizers = _make_vectorizers(
                self.char_ngrams, self.word_ngrams, self.n_char, self.n_word, self.binary
            )
        return self._vectorizers

    def probabilities(self, scan_texts: Sequence[str]) -> np.ndarray:
        """sigmoid(X @ coef + b) for already-normalised scan texts."""
        hashed = self.hashed()
        char, word = self.coef[: self.n_char], self.coef[self.n_char :]
        z = np.array(
            [
                hashed.score(text, char, word) + self.intercept
                if hashed.binary
                else self._sparse_score(text)
                for text in scan_texts
            ]
        )
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))), dtype=np.float64)

    def _sparse_score(self, text: str) -> float:
        """Models trained on counts rather than presence: through the transformers."""
        from sklearn import config_context  # type: ignore[import-untyped]

        char, word = self.vectorizers()
        with config_context(skip_parameter_validation=True, assume_finite=True):
            z = char.transform([text]) @ self.coef[: self.n_char]
            z = z + word.transform([text]) @ self.coef[self.n_char :] + self.intercept
        return float(z[0])

    def probability(
        self, norm: Normalized, max_chars: int = MAX_CHARS, use_semantic: bool = True
    ) -> float:
        """Probability that the text is an injection (max over windows of its scan text).

        With the semantic half, a window's probability mixes the n-gram and the embedding
        probabilities; the embedding is computed only for windows where it can change the
        decision (see ``semantic.needs_embedding``), the others keep the n-gram one.
        """
        texts = windows(norm.scan_text()[:max_chars])
        p = self.probabilities(texts)
        if self.emb_coef is None or not use_semantic or self.ngram_weight >= 1.0:
            return float(p.max())
        w = self.ngram_weight
        need = semantic.needs_embedding(p, w, self.cut)
        if need.any():
            x = semantic.embed([t for t, n in zip(texts, need, strict=True) if n])
            p_emb = semantic.sigmoid(x @ self.emb_coef + self.emb_intercept)
            p = p.copy()
            p[need] = w * p[need] + (1.0 - w) * p_emb
        return float(p.max())

    def calibrate(self, p: float) -> float:
        """Map a probability onto the guard scale: ``cut`` -> 0.5, monotone, 0 -> 0, 1 -> 1."""
        t = min(max(self.cut, 1e-6), 1 - 1e-6)
        if p < t:
            return GUARD_THRESHOLD * p / t
        return GUARD_THRESHOLD + (1 - GUARD_THRESHOLD) * (p - t) / (1 - t)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez_compressed(
                f,
                version=np.int32(FORMAT_VERSION),
                coef=self.coef.astype(np.float16),
                intercept=np.float32(self.intercept),
                cut=np.float32(self.cut),
                binary=np.bool_(self.binary),
                char_ngrams=np.array(self.char_ngrams, dtype=np.int32),
                word_ngrams=np.array(self.word_ngrams, dtype=np.int32),
                n_char=np.int64(self.n_char),
                n_word=np.int64(self.n_word),
                metrics=np.array(json.dumps(self.metrics, sort_keys=True)),
                emb_coef=(
                    np.zeros(0, dtype=np.float16)
                    if self.emb_coef is None
                    else self.emb_coef.astype(np.float16)
                ),
                emb_intercept=np.float32(self.emb_intercept),
                ngram_weight=np.float32(self.ngram_weight),
            )


def windows(text: str) -> list[str]:
    if len(text) <= WINDOW:
        return [text]
    return [text[i : i + WINDOW] for i in range(0, len(text) - WINDOW + STEP, STEP)]


def _make_vectorizers(
    char_ngrams: tuple[int, int],
    word_ngrams: tuple[int, int],
    n_char: int,
    n_word: int,
    binary: bool,
) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import HashingVectorizer  # type: ignore[import-untyped]

    common: dict[str, Any] = {
        "alternate_sign": False,
        "lowercase": False,  # the scan text is already folded
        "binary": binary,
        "dtype": np.float32,
    }
    char = HashingVectorizer(
        analyzer="char_wb", ngram_range=char_ngrams, n_features=n_char, **common
    )
    word = HashingVectorizer(
        analyzer="word",
        ngram_range=word_ngrams,
        n_features=n_word,
        token_pattern=WORD_TOKENS,
        **common,
    )
    return char, word


def _load_file(path: Path) -> InjectionModel:
    with np.load(path, allow_pickle=False) as z:
        version = int(z["version"])
        if version not in (1, FORMAT_VERSION):
            raise ValueError(f"{path}: model format {version}, expected {FORMAT_VERSION}")
        emb = z["emb_coef"].astype(np.float32) if version >= 2 else np.zeros(0)
        char_ngrams = tuple(int(v) for v in z["char_ngrams"])
        word_ngrams = tuple(int(v) for v in z["word_ngrams"])
        return InjectionModel(
            coef=z["coef"].astype(np.float32),
            intercept=float(z["intercept"]),
            cut=float(z["cut"]),
            char_ngrams=(char_ngrams[0], char_ngrams[1]),
            word_ngrams=(word_ngrams[0], word_ngrams[1]),
            n_char=int(z["n_char"]),
            n_word=int(z["n_word"]),
            binary=bool(z["binary"]),
            metrics=json.loads(str(z["metrics"])),
            emb_coef=emb if emb.size else None,
            emb_intercept=float(z["emb_intercept"]) if version >= 2 else 0.0,
            ngram_weight=float(z["ngram_weight"]) if version >= 2 else 1.0,
        )


# Bumped whenever this process saves a model, so holders of a loaded one reload it.
generation = 0


@lru_cache(maxsize=4)
def _load_cached(path: str) -> InjectionModel:
    return _load_file(Path(path))


def load(path: Path | None = None) -> InjectionModel:
    """Load a model file (default: the shipped one), once per path per process."""
    return _load_cached(str((path or default_model_path()).resolve()))


# --- training --------------------------------------------------------------------------


def _features(model: InjectionModel, texts: Sequence[str]) -> Any:
    from scipy.sparse import hstack  # type: ignore[import-untyped]

    char, word = model.vectorizers()
    return hstack([char.transform(texts), word.transform(texts)]).tocsr()


def _fit(x: Any, y: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    clf = LogisticRegression(
        solver="liblinear", C=c, class_weight="balanced", random_state=seed, max_iter=1000
    )
    # Fit on the hashed columns that occur at all (a few percent of them): same solution,
    # several times faster; the unseen columns keep a zero weight.
    used = np.unique(x.indices)
    clf.fit(x[:, used], y)
    coef = np.zeros(x.shape[1], dtype=np.float32)
    coef[used] = clf.coef_[0]
    return coef, float(clf.intercept_[0])


def choose_cut(probs: np.ndarray, rule_scores: np.ndarray, labels: np.ndarray) -> float:
    """Lowest probability cut whose combined (rules + classifier) false-positive rate is
    within TARGET_FPR - FPR_MARGIN: the most recall the false-positive budget allows."""
    # combine() is a maximum and calibrate() maps ``cut`` to GUARD_THRESHOLD, so a text is
    # flagged at a given cut exactly when its rule score or its probability reaches it.
    neg = labels == 0
    budget = TARGET_FPR - FPR_MARGIN
    rule_flags = rule_scores >= GUARD_THRESHOLD
    for cut in np.unique(np.concatenate([probs, [1.0]])):
        flags = rule_flags | (probs >= cut)
        if flags[neg].mean() <= budget:
            return round(float(cut), 4)
    return 1.0


def binary_metrics(flags: Iterable[bool], labels: Iterable[int]) -> dict[str, Any]:
    tp = fp = fn = tn = 0
    for flag, y in zip(flags, labels, strict=True):
        f = bool(flag)
        tp += f and y == 1
        fp += f and y == 0
        fn += (not f) and y == 1
        tn += (not f) and y == 0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return {
        "n": tp + fp + fn + tn,
        "positives": tp + fn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fpr, 4),
    }


def evaluate(
    model: InjectionModel, examples: Sequence[Example], threshold: float = GUARD_THRESHOLD
) -> dict[str, Any]:
    """Metrics of the combined guard score (rules + this model) on ``examples``."""
    from genaiops.guardrails.injection.guard import combined_score

    t = threshold
    flags = [combined_score(normalize(e.text), model)[0] >= t for e in examples]
    out: dict[str, Any] = {"overall": binary_metrics(flags, [e.label for e in examples])}
    out["by_lang"] = {
        lang: binary_metrics(
            [f for f, e in zip(flags, examples, strict=True) if e.lang == lang],
            [e.label for e in examples if e.lang == lang],
        )
        for lang in sorted({e.lang for e in examples})
    }
    hard = [(f, e) for f, e in zip(flags, examples, strict=True) if e.category == "benign_hard"]
    out["fpr_benign_hard"] = round(sum(f for f, _ in hard) / len(hard), 4) if hard else None
    return out


def _cv_probabilities(
    model: InjectionModel,
    examples: Sequence[Example],
    scan: Sequence[str],
    x: Any,
    c: float,
    seed: int,
) -> np.ndarray:
    """Out-of-fold classifier probabilities on the train split, grouped by prompt family."""
    from sklearn.model_selection import StratifiedGroupKFold  # type: ignore[import-untyped]

    y = np.array([e.label for e in examples])
    groups = [e.group for e in examples]
    out = np.zeros(len(examples))
    folds = StratifiedGroupKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    for tr, te in folds.split(x, y, groups):
        coef, b = _fit(x[tr], y[tr], c, seed)
        fold = InjectionModel(coef.astype(np.float16).astype(np.float32), b, 0.5)
        fold._vectorizers = model.vectorizers()
        for i in te:
            # Same windows as at prediction time; one row of x is the one-window case.
            if len(scan[i]) <= WINDOW:
                z = float((x[i] @ fold.coef)[0]) + fold.intercept
                out[i] = 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
            else:
                out[i] = fold.probability(normalize(examples[i].text))
    return out


def _average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

    return float(average_precision_score(labels, scores))


def _semantic_half(
    train_set: Sequence[Example], scan: Sequence[str], y: np.ndarray, oof: np.ndarray, seed: int
) -> tuple[float, float, np.ndarray, dict[str, float]]:
    """Choose the embedding model's C and the n-gram weight by the average precision of the
    out-of-fold mixed probability; returns (C, weight, mixed out-of-fold, report).

    Each prompt is embedded as its first window (training prompts fit in one)."""
    x = semantic.embed([t[:WINDOW] for t in scan])
    groups = [e.group for e in train_set]
    best: tuple[float, float, float, np.ndarray] | None = None
    report: dict[str, float] = {}
    for c in semantic.C_GRID:
        p_emb = semantic.cv_probabilities(x, y, groups, c, seed, CV_FOLDS)
        for w in semantic.WEIGHT_GRID:
            mix = w * oof + (1 - w) * p_emb
            ap = _average_precision(mix, y)
            report[f"C={c:g},w={w:g}"] = round(ap, 4)
            if best is None or ap > best[0] + 1e-9:
                best = (ap, c, w, mix)
    assert best is not None
    return best[1], best[2], best[3], report


def train(
    dataset_path: Path | None = None,
    output: Path | None = None,
    seed: int = 0,
    use_semantic: bool = True,
) -> dict[str, Any]:
    """Train on the train split, choose C, the n-gram weight and the cut by grouped CV on
    it, save the model (default: the shipped ``data/model.npz``) and return metrics on the
    test split."""
    examples = load_dataset(dataset_path)
    train_set = [e for e in examples if e.split == "train"]
    test_set = [e for e in examples if e.split == "test"]
    if not train_set:
        raise ValueError("the dataset has no train split")
    from genaiops.guardrails.injection.guard import combine
    from genaiops.guardrails.injection.rules import match, score

    base = InjectionModel(np.zeros(N_CHAR + N_WORD, dtype=np.float32), 0.0, 0.5)
    scan = [normalize(e.text).scan_text() for e in train_set]
    y = np.array([e.label for e in train_set])
    x = _features(base, scan)

    best: tuple[float, float, np.ndarray] | None = None
    cv_report: dict[str, float] = {}
    for c in C_GRID:
        oof = _cv_probabilities(base, train_set, scan, x, c, seed)
        ap = _average_precision(oof, y)
        cv_report[f"C={c:g}"] = round(ap, 4)
        if best is None or ap > best[0] + 1e-9:
            best = (ap, c, oof)
    assert best is not None
    _, c, oof = best
    semantic_report: dict[str, float] = {}
    c_emb, weight = 0.0, 1.0
    if use_semantic:
        c_emb, weight, oof, semantic_report = _semantic_half(train_set, scan, y, oof, seed)
    rule_scores = np.array([score(match(normalize(e.text))) for e in train_set])
    cut = choose_cut(oof, rule_scores, y)
    base.cut = cut
    combined = [
        combine(r, base.calibrate(p)) >= GUARD_THRESHOLD
        for r, p in zip(rule_scores, oof, strict=True)
    ]
    classifier_only = [base.calibrate(p) >= GUARD_THRESHOLD for p in oof]

    coef, intercept = _fit(x, y, c, seed)
    model = InjectionModel(coef.astype(np.float16).astype(np.float32), intercept, cut)
    model._vectorizers = base.vectorizers()
    if use_semantic:
        emb_coef, model.emb_intercept = semantic.fit(
            semantic.embed([t[:WINDOW] for t in scan]), y, c_emb, seed
        )
        model.emb_coef = emb_coef.astype(np.float16).astype(np.float32)
        model.ngram_weight = weight
    metrics: dict[str, Any] = {
        "seed": seed,
        "C": c,
        "cut": cut,
        "threshold": GUARD_THRESHOLD,
        "n_train": len(train_set),
        "n_test": len(test_set),
        "cv_average_precision": cv_report,
        "semantic": {"C": c_emb, "ngram_weight": weight, "cv_average_precision": semantic_report}
        if use_semantic
        else None,
        "cv_classifier_only": binary_metrics(classifier_only, y.tolist()),
        "cv_combined": binary_metrics(combined, y.tolist()),
        "test": evaluate(model, test_set) if test_set else None,
    }
    model.metrics = metrics
    path = output or default_model_path()
    model.save(path)
    global generation
    generation += 1
    _load_cached.cache_clear()
    return {**metrics, "output": str(path), "size_bytes": path.stat().st_size}


def train_cli(dataset: Path | None, output: Path | None) -> dict[str, Any]:
    """Entry point for ``genaiops guardrails train``: train, save, return the metrics."""
    return train(dataset_path=dataset, output=output)
