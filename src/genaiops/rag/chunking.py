"""Cutting loaded documents into chunks for retrieval: token counting, sentence
segmentation (Spanish, Portuguese, English) and structure-respecting packing.

Owns how a ``LoadedDocument`` becomes a list of ``Chunk``; loaders own what a section is,
embedders and stores own what happens to chunks next.

Trade-offs:

* Token counts are an approximation (see ``count_tokens``) rather than a real tokenizer:
  chunking must not depend on which embedder or generator is configured, and must not
  load a model. Chunk sizes are therefore targets, not exact limits of any one tokenizer.
* Sentence segmentation is rule based (terminators, abbreviations, initials, decimals,
  list items) rather than a trained model. When a rule is unsure it keeps text together:
  merging two sentences costs a slightly larger packing unit, splitting "Sr. García" in
  two would cut a name from its sentence and put the pieces in different chunks.
* Structure wins over fill: a page or heading boundary always starts a new chunk, and a
  paragraph that fits a chunk is never split, even if that leaves the previous chunk
  short. Retrieval cites one page/heading per chunk, and whole paragraphs read better.
* Overlap is made of whole sentences only, so no chunk starts mid-sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genaiops.errors import InvalidRequest
from genaiops.rag.documents import Chunk, LoadedDocument

# ---------------------------------------------------------------------------------------
# Token counting

# Word pieces as subword tokenizers see them: a run of letters/digits, or one punctuation
# mark (tokenizers nearly always give punctuation its own token).
_TOKEN_PIECE = re.compile(r"\w+|[^\w\s]")
# Long words are split by BPE/WordPiece vocabularies into several subwords; about one
# extra token per 6 characters matches common tokenizers on es/pt/en text well enough.
_LONG_WORD = 6


def count_tokens(text: str) -> int:
    """Approximate the number of subword tokens in ``text`` without a model.

    Counts word pieces (runs of letters or digits, and each punctuation mark) plus one
    extra token for every started block of 6 characters beyond the first 6 of a long word
    ("documentación", 13 characters, counts 3). Real tokenizers differ by model (often
    by 10-30%), so sizes computed with this are targets, not exact limits. The count is
    additive over whitespace: the tokens of ``a + " " + b`` are those of ``a`` plus ``b``.
    """
    total = 0
    for match in _TOKEN_PIECE.finditer(text):
        length = match.end() - match.start()
        total += 1
        if length > _LONG_WORD:
            total += (length - _LONG_WORD + _LONG_WORD - 1) // _LONG_WORD
    return total


# ---------------------------------------------------------------------------------------
# Sentence segmentation

# A terminator run (".", "?!", "...", "…") plus any closing quotes or brackets, followed
# by whitespace or the end of the block. A "." followed directly by a digit or letter
# (3.14, 1.000,50, e.g., www.example.com) is never a candidate.
_TERMINATOR = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s|$)")
# Characters that may open a token before a terminator: "(Sr." and "«etc." are still
# abbreviations.
_OPENERS = "\"'“‘«([¿¡"
# A line that starts a list item: "-", "*", "•", "1.", "1)".
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*•]|\d{1,3}[.)])\s")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")

# Abbreviations after which "." does not end a sentence (es, pt, en). Compared exactly
# (case matters, so capitalised variants are listed where they occur), without the final
# "."; dotted ones (e.g., i.e., S.A., U.S.) and initials are recognised by shape instead.
_ABBREVIATIONS = frozenset(
    {
        # Titles and forms of address.
        "Sr", "Sra", "Srta", "Sres", "Sras", "Dr", "Dra", "Dres", "Lic", "Ing", "Prof",
        "Profa", "Arq", "Mr", "Mrs", "Ms", "Jr", "Sto", "Sta", "Ud", "Uds", "Vd", "Vds",
        "Excmo", "Excma", "Exmo", "Exma", "Dña", "St", "Mtro", "Mtra", "Eng", "Enga",
        # Offices and ranks (courts, the military, government).
        "Rel", "Des", "Min", "Gral", "Gen", "Cel", "Ten", "Sgt", "Dep", "Sen", "Pres",
        "Gob", "Gov", "Pe",
        # Companies.
        "Ltda", "Cia", "Cía", "Inc", "Ltd", "Co", "Corp",
        # References and the like.
        "ej", "Ej", "pág", "Pág", "págs", "pag", "núm", "Núm", "nº", "Nº", "N°",
        "art", "Art", "arts", "cap", "Cap", "vol", "Vol", "fig", "Fig", "pp", "ed",
        "vs", "cf", "aprox", "approx", "tel", "Tel", "Av", "av", "Avda", "obs", "Obs",
        "fl", "fls", "Fls", "inc", "incs", "frac", "fracc", "Sect", "sect", "ext", "Ext",
        "ex", "al", "máx", "mín", "Máx", "Mín", "Ed", "apto", "Apto", "Depto", "Dpto",
        "Col", "Cd", "Edo", "Bco",
    }
)  # fmt: skip
# Abbreviations that are also ordinary words ("No." vs "Dije que no. Luego..."): they
# only count as abbreviations when a number follows ("No. 5").
_NUMBER_ABBREVIATIONS = frozenset({"No", "Nos", "no", "Num", "num", "n", "min", "max"})


def _token_before(text: str, start: int, end: int) -> tuple[str, int]:
    """The non-space token ending at ``end`` (not before ``start``), without opening
    quotes or brackets, and where it starts."""
    i = end
    while i > start and not text[i - 1].isspace():
        i -= 1
    while i < end and text[i] in _OPENERS:
        i += 1
    return text[i:end], i


def _period_keeps_sentence(token: str, at_block_start: bool, next_char: str) -> bool:
    """Whether a single "." after ``token`` belongs to an abbreviation, not a sentence end."""
    if token in _ABBREVIATIONS:
        return True
    if token in _NUMBER_ABBREVIATIONS:
        return next_char.isdigit()
    if len(token) == 2 and token.isupper() and token[0] == token[1]:
        # Spanish plural initials: "EE. UU.", "RR. HH.", "FF. AA.", "CC. OO.".
        return True
    parts = token.split(".")
    # Initials and dotted abbreviations: "J." (J. R. R. Tolkien), "e.g", "i.e", "U.S",
    # "S.A", "p.m"; also "p." of "p. ej.".
    if all(len(p) == 1 and p.isalpha() for p in parts):
        # English "I" ends sentences far more often than it is an initial.
        return len(parts) > 1 or (token.isupper() and token != "I") or token == "p"
    # "1. Instalar..." at the start of a list item is a marker, not a sentence.
    return at_block_start and token.isdigit()


def _is_boundary(text: str, block_start: int, block_end: int, match: re.Match[str]) -> bool:
    i = match.end()
    while i < block_end and text[i].isspace():
        i += 1
    if i >= block_end:
        return True
    next_char = text[i]
    # A lower-case continuation ("Pues… no sé", "etc. y más") is the same sentence.
    if next_char.islower():
        return False
    terminator = match.group().rstrip("\"'”’»)]")
    if terminator != ".":
        return True
    token, token_start = _token_before(text, block_start, match.start())
    return not _period_keeps_sentence(token, token_start == block_start, next_char)


def _block_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the blocks in ``text[start:end]``: separated by blank lines, and a list
    item always starts a block. Spans are stripped of surrounding whitespace."""
    cuts = [start]
    for match in _BLANK_LINE.finditer(text, start, end):
        cuts.extend((match.start(), match.end()))
    line_start = start
    while True:
        newline = text.find("\n", line_start, end)
        if newline < 0:
            break
        line_start = newline + 1
        if _LIST_ITEM.match(text, line_start, end):
            cuts.extend((line_start, line_start))
    cuts.append(end)
    cuts.sort()
    spans: list[tuple[int, int]] = []
    for a, b in zip(cuts[::2], cuts[1::2], strict=True):
        span = _strip_span(text, a, b)
        if span is not None:
            spans.append(span)
    return spans


def _strip_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for block_start, block_end in _block_spans(text, start, end):
        sentence_start = block_start
        for match in _TERMINATOR.finditer(text, block_start, block_end):
            if _is_boundary(text, block_start, block_end, match):
                span = _strip_span(text, sentence_start, match.end())
                if span is not None:
                    spans.append(span)
                sentence_start = match.end()
        span = _strip_span(text, sentence_start, block_end)
        if span is not None:
            spans.append(span)
    return spans


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, each its original text stripped of surrounding
    whitespace.

    Boundaries: ".", "?", "!", "…" (and runs such as "?!" or "...") followed by optional
    closing quotes/brackets, whitespace and a word that does not start in lower case;
    blank lines; and lines that start a list item ("-", "*", "•", "1."). Not boundaries:
    decimals (3.14, 1.000,50), known abbreviations (Sr., Dra., p. ej., pág., Mr., e.g.,
    S.A., ...), initials (J. R. R. Tolkien) and a list item's own number. Spanish inverted
    marks need nothing special: "¿" and "¡" open the sentence that "?" and "!" close.
    """
    return [text[a:b] for a, b in _sentence_spans(text)]


# ---------------------------------------------------------------------------------------
# Chunking

_MIN_CHUNK_TOKENS = 16
# As the API and the configuration allow: past it a chunk is a document, not a passage.
_MAX_CHUNK_TOKENS = 8192


@dataclass(frozen=True)
class _Piece:
    """A packing unit: a sentence, or a word-boundary fragment of a sentence too long for
    one chunk. Offsets are into the section's text."""

    start: int
    end: int
    tokens: int
    paragraph: int
    # Only whole sentences may be repeated as overlap.
    whole: bool


def check_sizes(chunk_tokens: int, overlap_tokens: int) -> None:
    """Raise InvalidRequest unless the sizes can be used (16 <= chunk_tokens <= 8192,
    overlap at most half a chunk)."""
    if not _MIN_CHUNK_TOKENS <= chunk_tokens <= _MAX_CHUNK_TOKENS:
        raise InvalidRequest(
            f"chunk_tokens must be between {_MIN_CHUNK_TOKENS} and {_MAX_CHUNK_TOKENS}, "
            f"got {chunk_tokens}.",
            param="chunk_tokens",
        )
    if not 0 <= overlap_tokens <= chunk_tokens // 2:
        raise InvalidRequest(
            f"chunk_overlap must be between 0 and half of chunk_tokens "
            f"({chunk_tokens // 2}), got {overlap_tokens}.",
            param="chunk_overlap",
        )


def _split_long(text: str, start: int, end: int, limit: int, paragraph: int) -> list[_Piece]:
    """Cut a sentence longer than ``limit`` tokens on word boundaries. A single word over
    the limit becomes a piece of its own: there is no better place to cut it."""
    pieces: list[_Piece] = []
    piece_start = piece_end = -1
    piece_tokens = 0
    for word in re.finditer(r"\S+", text[start:end]):
        tokens = count_tokens(word.group())
        if piece_start >= 0 and piece_tokens + tokens > limit:
            pieces.append(_Piece(piece_start, piece_end, piece_tokens, paragraph, whole=False))
            piece_start = -1
        if piece_start < 0:
            piece_start, piece_tokens = start + word.start(), 0
        piece_end = start + word.end()
        piece_tokens += tokens
    if piece_start >= 0:
        pieces.append(_Piece(piece_start, piece_end, piece_tokens, paragraph, whole=False))
    return pieces


def _paragraph_pieces(text: str, limit: int) -> list[list[_Piece]]:
    """The section's paragraphs (split on blank lines), each as its packing pieces."""
    paragraphs: list[list[_Piece]] = []
    start = 0
    bounds = [(m.start(), m.end()) for m in _BLANK_LINE.finditer(text)] + [(len(text), 0)]
    for para_end, next_start in bounds:
        pieces: list[_Piece] = []
        number = len(paragraphs)
        for a, b in _sentence_spans(text, start, para_end):
            tokens = count_tokens(text[a:b])
            if tokens > limit:
                pieces.extend(_split_long(text, a, b, limit, number))
            else:
                pieces.append(_Piece(a, b, tokens, number, whole=True))
        if pieces:
            paragraphs.append(pieces)
        start = next_start
    return paragraphs


def _overlap(previous: list[_Piece], budget: int) -> list[_Piece]:
    """The longest run of whole sentences ending ``previous`` that fits ``budget``."""
    taken: list[_Piece] = []
    used = 0
    for piece in reversed(previous):
        if not piece.whole or used + piece.tokens > budget:
            break
        taken.append(piece)
        used += piece.tokens
    taken.reverse()
    return taken


class _Packer:
    """Packs one section's pieces into chunks of at most ``limit`` tokens, carrying whole
    trailing sentences of each chunk into the next as overlap."""

    def __init__(self, limit: int, overlap: int) -> None:
        self.limit = limit
        self.overlap = overlap
        self.chunks: list[list[_Piece]] = []
        self.current: list[_Piece] = []
        self.tokens = 0
        # Whether ``current`` holds anything besides overlap carried from the last chunk.
        self.fresh = False

    def add(self, pieces: list[_Piece]) -> None:
        """Add pieces that must stay in one chunk (a whole paragraph, or one sentence)."""
        size = sum(p.tokens for p in pieces)
        if self.fresh and self.tokens + size > self.limit:
            previous = self.current
            self.chunks.append(previous)
            # The overlap shrinks so that it plus the incoming unit still fit the limit.
            self.current = _overlap(previous, min(self.overlap, self.limit - size))
            self.tokens = sum(p.tokens for p in self.current)
            self.fresh = False
        self.current.extend(pieces)
        self.tokens += size
        self.fresh = True

    def finish(self) -> list[list[_Piece]]:
        if self.fresh:
            self.chunks.append(self.current)
        return self.chunks


def _chunk_text(text: str, pieces: list[_Piece]) -> str:
    """The original text covered by ``pieces``: each paragraph's stretch verbatim (inner
    line breaks kept), paragraphs joined by a blank line."""
    parts: list[str] = []
    run_start = 0
    for i, piece in enumerate(pieces):
        last_of_run = i + 1 == len(pieces) or pieces[i + 1].paragraph != piece.paragraph
        if last_of_run:
            parts.append(text[pieces[run_start].start : piece.end])
            run_start = i + 1
    return "\n\n".join(parts)


def chunk_document(
    doc: LoadedDocument, *, chunk_tokens: int = 256, overlap_tokens: int = 32
) -> list[Chunk]:
    """Cut ``doc`` into chunks of about ``chunk_tokens`` tokens (see ``count_tokens``).

    Each chunk comes from exactly one section, so it has one page and heading. Within a
    section, whole paragraphs are packed while they fit; a paragraph larger than a chunk
    is packed sentence by sentence; a sentence larger than a chunk is cut on word
    boundaries. Consecutive chunks of one section share up to ``overlap_tokens`` of
    whole sentences (the end of the previous chunk opens the next). Only a single word
    longer than ``chunk_tokens`` can make a chunk exceed it.

    Raises ``InvalidRequest`` unless ``chunk_tokens >= 16`` and
    ``0 <= overlap_tokens <= chunk_tokens // 2``.
    """
    check_sizes(chunk_tokens, overlap_tokens)
    chunks: list[Chunk] = []
    for section in doc.sections:
        packer = _Packer(chunk_tokens, overlap_tokens)
        for paragraph in _paragraph_pieces(section.text, chunk_tokens):
            if sum(p.tokens for p in paragraph) <= chunk_tokens:
                packer.add(paragraph)
            else:
                for piece in paragraph:
                    packer.add([piece])
        for pieces in packer.finish():
            text = _chunk_text(section.text, pieces)
            chunks.append(
                Chunk(
                    text=text,
                    index=len(chunks),
                    tokens=count_tokens(text),
                    page=section.page,
                    heading=section.heading,
                )
            )
    return chunks


def embedding_text(chunk: Chunk, title: str) -> str:
    """The text embedders see for ``chunk``: "title > heading", a blank line, the text.

    A chunk often leaves its subject implicit ("It must be renewed every year") because
    the title and heading above it say what it is about; without them its dense vector
    would miss that topic and questions naming it would not find the chunk. The stored
    chunk text stays without the prefix, so citations and prompts quote only the source.
    """
    prefix = " > ".join(part.strip() for part in (title, chunk.heading or "") if part.strip())
    return f"{prefix}\n\n{chunk.text}" if prefix else chunk.text
