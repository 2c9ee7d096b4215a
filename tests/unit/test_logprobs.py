"""Log probabilities: entries from logits, from an upstream's answer, and their alignment
with released text (engines/logprobs.py)."""

from __future__ import annotations

import math

import numpy as np

from genaiops.engines.logprobs import Aligner, TokenLogprob, from_logits, from_wire

VOCAB = [b"a", b"b", b"\xc3", b"\xa9", b" c"]


def piece(token: int) -> bytes:
    return VOCAB[token]


def test_entries_are_a_log_softmax_of_the_logits_with_the_best_alternatives() -> None:
    logits = np.array([2.0, 0.5, 3.0, -1.0, 1000.0 - 997.0], dtype=np.float32)
    entry = from_logits(logits, 1, 3, piece, "b")
    norm = math.log(sum(math.exp(x) for x in logits.tolist()))
    assert math.isclose(entry.logprob, 0.5 - norm, abs_tol=1e-6)
    assert entry.token == "b" and entry.raw == b"b" and entry.text == "b"
    # Best first; ties keep vocabulary order; a lone UTF-8 byte is shown replaced.
    assert [t for t, _, _ in entry.top] == ["\ufffd", " c", "a"]
    assert [b for _, _, b in entry.top] == [b"\xc3", b" c", b"a"]
    assert math.isclose(sum(math.exp(lp) for lp in (entry.logprob, *(x for _, x, _ in entry.top)))
                        + math.exp(-1.0 - norm), 1.0, abs_tol=1e-6)  # fmt: skip
    # Huge logits do not overflow.
    big = from_logits(np.array([1e4, 1e4 - 1], dtype=np.float32), 0, 0, piece, "a")
    assert math.isclose(big.logprob, -math.log1p(math.exp(-1)), abs_tol=1e-6) and big.top == ()


def entry(text: str) -> TokenLogprob:
    return TokenLogprob(text, -1.0, text.encode(), (), text)


def test_entries_wait_for_their_text_and_die_with_rewritten_text() -> None:
    aligner = Aligner()
    aligner.add([entry("Hola"), entry(" a"), entry(" 529"), entry(".982"), entry(" y")])
    assert aligner.release(3) == ()  # "Hol": the token is not out whole
    assert [e.token for e in aligner.release(6)] == ["Hola", " a"]
    # " 529.982 " went out rewritten (redacted): its tokens go, " y" too (its space was in it).
    assert aligner.release(15, unchanged=False) == ()
    assert aligner.release(100) == ()


def test_an_upstreams_logprobs_are_read_in_both_shapes_and_fitted_to_the_text() -> None:
    chat = {"content": [
        {"token": "Ol", "logprob": -0.5, "bytes": [79, 108], "top_logprobs": [
            {"token": "Ol", "logprob": -0.5, "bytes": [79, 108]}]},
        {"token": "á", "logprob": -0.25, "bytes": [195, 161], "top_logprobs": []},
    ]}  # fmt: skip
    entries = from_wire(chat, "Olá")
    assert [(e.token, e.text, e.raw) for e in entries] == [
        ("Ol", "Ol", b"Ol"), ("á", "á", "á".encode())]  # fmt: skip
    assert entries[0].top == (("Ol", -0.5, b"Ol"),)
    legacy = {
        "tokens": [" o", " Rio"],
        "token_logprobs": [-0.1, -2.0],
        "top_logprobs": [{" o": -0.1}, {" Rio": -2.0, " a": -2.5}],
        "text_offset": [0, 2],
    }
    entries = from_wire(legacy, " o Rio")
    assert [e.token for e in entries] == [" o", " Rio"] and entries[1].top[1] == (" a", -2.5, b" a")
    # Tokens that do not spell the text: the whole text is the last entry's width.
    odd = from_wire(legacy, " o Rio!")
    assert [e.text for e in odd] == ["", " o Rio!"]
    # What does not parse is left out, never an error.
    assert from_wire({"content": [{"token": "x"}]}, "x") == ()
    assert from_wire(None, "x") == () and from_wire({"tokens": ["a"]}, "a") == ()
