"""The toxicity guard: insults, hate, threats and explicit sexual content in en, es and pt.

This module owns the matcher behind ``ToxicityGuard``; the lexicon (word forms and phrase
patterns, each with a category, a severity and a language) lives in ``data/toxicity.json``,
which documents its format. Matching runs in three steps:

* normalise: compatibility forms and accents folded, lowercased, invisible characters
  dropped, Cyrillic/Greek look-alikes folded; leetspeak undone inside tokens that mix
  letters with digits or @/$ ("1d10t4"); spaced letters joined ("p u t a", "k.y.s"); a
  masked token ("p*ta") read as the lexicon word it fits. Tokens keep their offsets, so
  spans index the original text.
* words: whole tokens only (so "class", "Essex", "cuentas", "computador" are safe), looked
  up with repeated letters squeezed, then required to keep every doubled letter of the
  lexicon form: "idiotaaaa" is "idiota", "pera" (pear) is not "perra".
* phrases: regexes over the token string for what a word cannot say: a threat needs a verb
  and a target ("te voy a matar", "vou te matar", "I will kill you"), group hate needs the
  group. A phrase wins over the words inside it: "puta madre" is a low expletive where
  "puta" alone is a medium insult.

Score: the highest severity found (low 0.4, medium 0.7, high 1.0); flagged at ``threshold``
(default 0.4, any finding). Low covers mild insults, undirected profanity and ambiguous
words, so a policy that wants only abuse sets 0.7. Limits: no sense of context, so quoted
or reported speech and fiction count like the real thing; negation is cheap and partial (a
negator just before a threat makes it low, "no te voy a matar"; one within three tokens
lowers other findings one level, so "no eres un idiota" stays a low insult); words with
innocent senses in one of the languages (negro, burro, concha, coger, perra, polla, dick,
retard...) only count inside phrases, said of someone ("eres una perra", "you dick"); a
one-letter word breaks spaced-letter joining ("te voy a m a t a r" is missed).
Nothing is loaded at import: the lexicon is compiled on first use and the fold of each
non-ASCII character is cached when first seen.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import accumulate, product
from typing import Any

from genaiops.guardrails.base import GuardResult, Severity, Span
from genaiops.guardrails.confusables import HOMOGLYPHS

CATEGORIES = ("insult", "hate", "threat", "sexual")
LANGUAGES = ("en", "es", "pt")
SEVERITY_SCORE: dict[str, float] = {"low": 0.4, "medium": 0.7, "high": 1.0}
_LEVELS: tuple[Severity, ...] = ("low", "medium", "high")
_RANK = {level: rank for rank, level in enumerate(_LEVELS)}


# A token: letters, digits and the leetspeak symbols, with masking stars inside ("p*ta").
# Tried first: three or more single letters split by short separators ("p u t a", "k.y.s").
_TOKEN = re.compile(
    r"(?P<spaced>(?<![a-z0-9@$*])[a-z0-9@$](?:[ \t.\-_·|/+~]{1,3}[a-z0-9@$]){2,}(?![a-z0-9@$*]))"
    r"|[a-z0-9@$]+(?:\*+[a-z0-9@$]+)*"
)
_NOT_TOKEN_CHAR = re.compile(r"[^a-z0-9@$]+")
_LETTER = re.compile(r"[a-z]")
# A letter or two and then digits only is a model or part code ("Galaxy A55", "S21"), not
# leetspeak ("a55" is no "ass").
_MODEL_CODE = re.compile(r"[a-z]{1,2}[0-9]{2,}")
_LEET = str.maketrans("013457@$", "oieastas")
_SQUEEZE = re.compile(r"([a-z])\1+")
_LONG_RUN = re.compile(r"([a-z])\1{2,}")
_RUN = re.compile(r"([a-z])\1*")
_STARS = re.compile(r"\*+")
# Squeezes the letters of a pattern but not an escape such as "\ss".
_PATTERN_SQUEEZE = re.compile(r"(?<!\\)([a-z])\1+")
_BRACES = re.compile(r"\{([^{}]*)\}")
_DEF = re.compile(r"<<([A-Z_]+)>>")
_FORM = re.compile(r"[a-z]+")
_REASON_ORDER = ("threat", "hate", "sexual", "insult")  # which to name first on a tie
_NEGATORS = frozenset({"no", "not", "never", "nunca", "nao", "jamas", "nem", "ni", "nope"})


def _fold_char(ch: str) -> str:
    if ch.lower() in HOMOGLYPHS:
        return HOMOGLYPHS[ch.lower()]
    category = unicodedata.category(ch)
    if category in ("Mn", "Me", "Cf"):
        return ""  # combining marks and zero-width characters: "id\u200biota" is "idiota"
    if category in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp"):
        return " "  # controls, lone surrogates (binary input): a plain separator
    decomposed = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


class _FoldTable(dict[int, str]):
    """str.translate table that computes and caches the fold of each character it meets."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        self[code] = folded
        return folded


_FOLD = _FoldTable()


def _fold(text: str) -> tuple[str, list[int] | None]:
    """The folded text and, when lengths changed, the original index of each folded char."""
    if text.isascii():
        return text.lower(), None
    folded = text.translate(_FOLD)
    if len(folded) == len(text) and all(len(_FOLD[ord(c)]) == 1 for c in set(text)):
        return folded, None
    origin: list[int] = []
    for i, ch in enumerate(text):
        origin.extend([i] * len(_FOLD[ord(ch)]))
    return folded, origin


@dataclass(frozen=True)
class _Entry:
    category: str
    severity: Severity
    lang: str
    term: str  # the lexicon form of a word, the id of a phrase


@dataclass(frozen=True)
class _Phrase:
    entry: _Entry
    keys: frozenset[str]  # first four letters of tokens that let the pattern run
    regex: re.Pattern[str]


@dataclass(frozen=True, eq=False)  # hashed by identity, for the masked-token cache
class _Lexicon:
    # squeezed form -> (form, its letter runs, entry), for whole-token lookups
    words: dict[str, tuple[tuple[str, tuple[tuple[str, int], ...], _Entry], ...]]
    by_initial: dict[str, tuple[str, ...]]  # first letter -> forms, for masked tokens
    phrases: tuple[_Phrase, ...]


def _runs(form: str) -> tuple[tuple[str, int], ...]:
    return tuple((m.group(1), len(m.group())) for m in _RUN.finditer(form))


def _expand(form: str) -> list[str]:
    parts = _BRACES.split(form)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(combo) for combo in product(*choices)]


def _normal_form(raw: str) -> str:
    form = raw.translate(_FOLD).strip()
    if not _FORM.fullmatch(form):
        raise ValueError(f"toxicity lexicon: {raw!r} is not a single lowercase word")
    return form


def _check(lang: str, category: str, severity: str, where: str) -> Severity:
    if lang not in LANGUAGES or category not in CATEGORIES or severity not in _RANK:
        raise ValueError(f"toxicity lexicon: bad lang/category/severity in {where}")
    return _LEVELS[_RANK[severity]]


def _build_words(raw: dict[str, Any]) -> dict[tuple[str, str], _Entry]:
    merged: dict[tuple[str, str], _Entry] = {}
    for lang, categories in raw.items():
        for category, levels in categories.items():
            for severity, forms in levels.items():
                level = _check(lang, category, severity, f"words.{lang}.{category}")
                for form in (_normal_form(f) for raw_form in forms for f in _expand(raw_form)):
                    # The same word in two languages ("idiota"): one entry, both langs.
                    old = merged.get((form, category), _Entry(category, level, lang, form))
                    langs = "+".join(sorted({*old.lang.split("+"), lang}))
                    worst = max(old.severity, level, key=_RANK.__getitem__)
                    merged[(form, category)] = _Entry(category, worst, langs, form)
    return merged


def _compile_phrase(spec: dict[str, Any], defs: dict[str, str]) -> _Phrase:
    where = str(spec.get("id"))
    level = _check(spec["lang"], spec["category"], spec["severity"], where)
    source = "|".join(spec["pattern"])
    for _ in range(3):  # definitions may use definitions
        source = _DEF.sub(lambda m: defs[m.group(1)], source)
    if _DEF.search(source) or not spec["keys"]:
        raise ValueError(f"toxicity lexicon: unresolved definition or no keys in {where}")
    source = _PATTERN_SQUEEZE.sub(r"\1", source.translate(_FOLD))
    keys = frozenset(_SQUEEZE.sub(r"\1", _normal_form(k))[:4] for k in spec["keys"])
    # Whole tokens only. The token string starts with a space, so every token follows one:
    # a literal first character lets the regex engine skip straight to token starts.
    regex = re.compile(rf" (?:{source})(?![^ ])")
    return _Phrase(_Entry(spec["category"], level, spec["lang"], where), keys, regex)


def build_lexicon(raw: dict[str, Any]) -> _Lexicon:
    """Compile a lexicon in the format of ``data/toxicity.json`` (raises ValueError)."""
    words: dict[str, list[tuple[str, tuple[tuple[str, int], ...], _Entry]]] = {}
    initials: dict[str, list[str]] = {}
    for (form, _category), entry in _build_words(raw["words"]).items():
        words.setdefault(_SQUEEZE.sub(r"\1", form), []).append((form, _runs(form), entry))
        initials.setdefault(form[0], []).append(form)
    defs = {name: str(value) for name, value in raw.get("defs", {}).items()}
    phrases = tuple(_compile_phrase(spec, defs) for spec in raw["phrases"])
    return _Lexicon(
        {k: tuple(v) for k, v in words.items()},
        {k: tuple(sorted(set(v), key=len)) for k, v in initials.items()},
        phrases,
    )


@lru_cache(maxsize=1)
def load_lexicon() -> _Lexicon:
    text = resources.files("genaiops.guardrails.data").joinpath("toxicity.json")
    return build_lexicon(json.loads(text.read_text(encoding="utf-8")))


_MAX_MASKED = 32


@lru_cache(maxsize=4096)
def _unmask(token: str, lexicon: _Lexicon) -> str:
    """The lexicon form a masked token stands for ("p*ta" -> "puta"), or the token."""
    parts, stars = _STARS.split(token), _STARS.findall(token)
    visible = sum(len(p) for p in parts)
    hidden = sum(len(s) for s in stars)
    if len(token) > _MAX_MASKED or visible < 2 or hidden > visible or not token[0].isalpha():
        return token
    # One star hides one or two letters ("f*ck", "p*ta"), a run of n stars n letters.
    shortest = visible + hidden
    longest = visible + sum(len(s) if len(s) > 1 else 2 for s in stars)
    candidates = [
        form
        for form in lexicon.by_initial.get(token[0], ())
        if shortest <= len(form) <= longest
        and form.startswith(parts[0])
        and form.endswith(parts[-1])
    ]
    if not candidates:
        return token  # the common case for junk: no regex compiled
    gaps = [f"[a-z]{{{len(s)}}}" if len(s) > 1 else "[a-z]{1,2}" for s in stars]
    masked = re.compile("".join(p + g for p, g in zip(parts, [*gaps, ""], strict=True)))
    return next((form for form in candidates if masked.fullmatch(form)), token)


def _tokens(folded: str, lexicon: _Lexicon) -> tuple[list[str], list[int], list[int]]:
    forms: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for m in _TOKEN.finditer(folded):
        token = m.group()
        if m.lastgroup == "spaced":
            token = _NOT_TOKEN_CHAR.sub("", token)
        if (
            not token.isalpha()
            and (len(token) == 1 or _LETTER.search(token))
            and not _MODEL_CODE.fullmatch(token)
        ):
            # Only where letters mix with digits or @/$, or a lone "4" stands for "a".
            token = token.translate(_LEET)
            if "*" in token and len(token) <= _MAX_MASKED:
                # Longer tokens are never a masked word: not looked at, nor cached.
                token = _unmask(token, lexicon)
        forms.append(token)
        starts.append(m.start())
        ends.append(m.end())
    return forms, starts, ends


def _fits(form: str, runs: tuple[tuple[str, int], ...]) -> bool:
    """Every letter run of ``form`` is at least as long as the lexicon form's."""
    mine = _runs(form)
    return len(mine) == len(runs) and all(
        a == b and n >= m for (a, n), (b, m) in zip(mine, runs, strict=True)
    )


# A candidate finding: first and last token, entry, whether it is a phrase.
_Candidate = tuple[int, int, _Entry, bool]


def _word_candidates(forms: list[str], squeezed: list[str], lexicon: _Lexicon) -> list[_Candidate]:
    found: list[_Candidate] = []
    memo: dict[str, _Entry | None] = {}  # texts repeat their words
    for i, key in enumerate(squeezed):
        entries = lexicon.words.get(key)
        if entries is None:
            continue
        token = forms[i]
        if token not in memo:
            fitting = [e for form, runs, e in entries if form == token or _fits(token, runs)]
            # The longest form wins ("perra" over "pera"), then the severest.
            best = max(fitting, key=lambda e: (len(e.term), _RANK[e.severity]), default=None)
            memo[token] = best
        if (entry := memo[token]) is not None:
            found.append((i, i, entry, False))
    return found


def _phrase_candidates(squeezed: list[str], lexicon: _Lexicon) -> list[_Candidate]:
    prefixes = {token[:4] for token in squeezed}
    active = [p for p in lexicon.phrases if not p.keys.isdisjoint(prefixes)]
    if not active:
        return []
    line = " " + " ".join(squeezed)
    # Where each token starts without the leading space: where its space is in ``line``.
    starts = [0, *accumulate(len(t) + 1 for t in squeezed)][:-1]
    found: list[_Candidate] = []
    for phrase in active:
        for m in phrase.regex.finditer(line):
            # m.start() is the space before the first token, m.end() - 1 the last letter.
            first = bisect_right(starts, m.start()) - 1
            last = bisect_right(starts, m.end() - 2) - 1
            found.append((first, last, phrase.entry, True))
    return found


def _resolve(candidates: list[_Candidate], count: int) -> list[_Candidate]:
    """Non-overlapping findings: phrases first, then severer, then longer, then earlier."""
    candidates.sort(key=lambda c: (not c[3], -_RANK[c[2].severity], c[0] - c[1], c[0]))
    taken = bytearray(count)
    kept: list[_Candidate] = []
    same: dict[tuple[int, int, str], int] = {}
    for first, last, entry, is_phrase in candidates:
        twin = same.get((first, last, entry.category))
        if twin is not None:
            # The same span in another language's pattern ("te mato" is es and pt).
            k_first, k_last, k_entry, k_phrase = kept[twin]
            langs = "+".join(sorted({*k_entry.lang.split("+"), *entry.lang.split("+")}))
            merged = _Entry(k_entry.category, k_entry.severity, langs, k_entry.term)
            kept[twin] = (k_first, k_last, merged, k_phrase)
            continue
        if any(taken[first : last + 1]):
            continue
        taken[first : last + 1] = b"\x01" * (last - first + 1)
        same[(first, last, entry.category)] = len(kept)
        kept.append((first, last, entry, is_phrase))
    kept.sort(key=lambda c: c[0])
    return kept


def _negated(squeezed: list[str], first: int, window: int) -> bool:
    for k in range(max(0, first - window), first):
        token = squeezed[k]
        # "don't", "isn't": the tokenizer leaves "don", "t".
        if token in _NEGATORS or (token == "t" and k > 0 and squeezed[k - 1].endswith("n")):
            return True
    return False


def _parse_options(options: dict[str, Any] | None) -> tuple[float, frozenset[str]]:
    options = dict(options or {})
    threshold = options.pop("threshold", 0.4)
    categories = options.pop("categories", CATEGORIES)
    if options:
        raise ValueError(f"unknown toxicity options: {', '.join(sorted(options))}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValueError("toxicity threshold must be a number in (0, 1]")
    if not 0 < threshold <= 1:
        raise ValueError("toxicity threshold must be a number in (0, 1]")
    if isinstance(categories, str) or not categories or not set(categories) <= set(CATEGORIES):
        raise ValueError(f"toxicity categories: a list among {', '.join(CATEGORIES)}")
    return float(threshold), frozenset(categories)


class ToxicityGuard:
    """Guard protocol implementation; options ``{"threshold": float, "categories": [...]}``."""

    deterministic = True  # the same text, the same result: results may be remembered
    name = "toxicity"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.threshold, self.categories = _parse_options(options)
        self._lexicon = load_lexicon()

    def check(self, text: str) -> GuardResult:
        started = time.perf_counter()
        spans = self.find(text)
        score = max((SEVERITY_SCORE[s.detail["severity"]] for s in spans), default=0.0)
        result = GuardResult(
            guard=self.name,
            flagged=bool(spans) and score >= self.threshold,
            score=score,
            spans=spans,
            reason=_reason(spans),
        )
        result.latency_ms = (time.perf_counter() - started) * 1000
        return result

    def find(self, text: str) -> list[Span]:
        """Every finding in ``text``, in order, with offsets into ``text``."""
        folded, origin = _fold(text)
        forms, starts, ends = _tokens(folded, self._lexicon)
        if not forms:
            return []
        squeezed = _SQUEEZE.sub(r"\1", " ".join(forms)).split(" ")
        candidates = [
            c
            for c in _word_candidates(forms, squeezed, self._lexicon)
            + _phrase_candidates(squeezed, self._lexicon)
            if c[2].category in self.categories
        ]
        spans: list[Span] = []
        for first, last, entry, is_phrase in _resolve(candidates, len(forms)):
            start, end = _original(text, origin, starts[first], ends[last])
            severity, negated = entry.severity, False
            window = 1 if entry.category == "threat" else 3
            if _negated(squeezed, first, window):
                negated = True
                rank = 0 if entry.category == "threat" else max(0, _RANK[severity] - 1)
                severity = _LEVELS[rank]
            detail: dict[str, Any] = {"severity": severity, "lang": entry.lang}
            if is_phrase:
                detail["term"] = _LONG_RUN.sub(r"\1", " ".join(forms[first : last + 1]))
                detail["pattern"] = entry.term
            else:
                detail["term"] = entry.term
            if negated:
                detail["negated"] = True
            spans.append(Span(entry.category, start, end, text[start:end], detail))
        return spans


def _original(text: str, origin: list[int] | None, start: int, end: int) -> tuple[int, int]:
    if origin is None:
        return start, end
    first, last = origin[start], origin[end - 1] + 1
    # Take in the combining marks of the last letter (decomposed "e" + U+0301).
    while last < len(text) and unicodedata.combining(text[last]):
        last += 1
    return first, last


def _reason(spans: list[Span]) -> str | None:
    """Each category once, at its worst, the worst first: "threat (high, es); insult (low, pt)"."""
    ordered = sorted(
        spans, key=lambda s: (-_RANK[s.detail["severity"]], _REASON_ORDER.index(s.kind))
    )
    top: dict[str, str] = {}
    for span in ordered:
        top.setdefault(span.kind, f"{span.kind} ({span.detail['severity']}, {span.detail['lang']})")
    return "; ".join(top.values()) or None
