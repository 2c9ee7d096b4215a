from __future__ import annotations

import pytest

from genaiops.engines.text import StopMatcher


def run(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    m = StopMatcher(stops)
    out = []
    for piece in pieces:
        text, hit = m.feed(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + m.flush(), False


def test_no_stops_passes_through() -> None:
    assert run([], ["a", "b"]) == ("ab", False)


def test_stop_inside_one_piece() -> None:
    assert run(["END"], ["hello END world"]) == ("hello ", True)


def test_stop_split_across_pieces_is_never_emitted() -> None:
    m = StopMatcher(["<|end|>"])
    assert m.feed("answer <|") == ("answer ", False)
    assert m.feed("en") == ("", False)
    assert m.feed("d|> trailing") == ("", True)


def test_false_alarm_prefix_is_released() -> None:
    m = StopMatcher(["###"])
    assert m.feed("a #") == ("a ", False)
    assert m.feed("x") == ("#x", False)


@pytest.mark.parametrize("pieces", [["ab", "cd"], ["a", "b", "c", "d"], ["abcd"]])
def test_earliest_of_several_stops(pieces: list[str]) -> None:
    assert run(["cd", "bc"], pieces) == ("a", True)


def test_flush_returns_held_text() -> None:
    m = StopMatcher(["xyz"])
    assert m.feed("abc xy") == ("abc ", False)
    assert m.flush() == "xy"
