"""Chunking: token approximation, sentence segmentation (es/pt/en), structure-respecting
packing with sentence overlap, and the text given to embedders."""

from __future__ import annotations

import re
import time

import pytest

from genaiops.errors import InvalidRequest
from genaiops.rag.chunking import chunk_document, count_tokens, embedding_text, split_sentences
from genaiops.rag.documents import Chunk, LoadedDocument, Section

ES_1 = (
    "El Sr. García llegó a la oficina de la Av. Reforma a las 8.30 de la mañana. "
    "La Dra. Pérez, jefa del departamento, ya lo esperaba con el informe trimestral. "
    "¿Había revisado las cifras del último trimestre? Según la pág. 14 del documento, "
    "las ventas crecieron un 3,5 % y el margen bruto alcanzó 1.250.000,75 pesos. "
    "¡Era el mejor resultado desde 2019! Aun así, la Lic. Romero advirtió que los costos "
    "logísticos (p. ej. combustible, seguros, peajes, etc.) seguían subiendo."
)
ES_2 = (
    "La reunión continuó con la revisión del contrato firmado con Transportes del Norte S.A. "
    "y con el art. 7 del reglamento interno. El Ing. Martínez explicó que el proveedor "
    "había incumplido los plazos de entrega en tres ocasiones. "
    "Nadie quiso votar todavía… Preferían esperar la opinión del asesor jurídico. "
    '"No firmaremos nada sin una auditoría completa", dijo la Srta. Fuentes. '
    "Al final se acordó enviar una carta formal antes del viernes."
)
PT_1 = (
    "O Sr. Oliveira mora na Av. Paulista, nº 1578, desde que se mudou para São Paulo. "
    "Ele trabalha como engenheiro na Construtora Horizonte Ltda. há mais de dez anos. "
    "A empresa, que pertencia à Cia. Paulista de Obras, foi comprada em 2015 por R$ "
    "2.500.000,00. Segundo o Prof. Mendes, a aquisição foi um bom negócio. "
    "Você sabia que a sede fica a poucos metros do museu? Muitos funcionários almoçam lá "
    "às sextas-feiras."
)
PT_2 = (
    "O relatório anual, publicado na pág. 32 do boletim, mostra que a produtividade subiu "
    '4,7 %. A Dra. Souza comentou: "Os números são animadores, mas ainda há muito a '
    'fazer." Os diretores concordaram com ela. '
    "A próxima etapa inclui treinar as equipes de campo e renovar os equipamentos. "
    "O orçamento previsto é de 1.200.000 reais, dividido em quatro parcelas."
)
EN_1 = (
    "Mr. Thompson moved to the U.S. in 1998 after finishing his degree in chemistry. "
    "He first worked for Dr. Patel at a small laboratory in Boston, where the team "
    "studied catalysts for clean fuels. The results were promising, i.e. the yield rose "
    "from 3.2 to 7.9 percent. Did anyone expect such a jump? Not really! "
    "Mrs. Patel, who ran the finance office, later said the grant had almost been cancelled."
)
EN_2 = (
    "The handbook written by J. R. R. Tolkien's publisher in 1954 is now a collector's "
    "item. Prices vary widely, e.g. a first edition sold for 4,500.00 dollars last year. "
    '"It was a bargain," the buyer told reporters. (The seller disagreed.) '
    "Ms. Carter, a rare-book dealer, estimates that fewer than 300 copies survive. "
    "Most of them are held by libraries and private collections."
)
PARAGRAPHS = [ES_1, ES_2, PT_1, PT_2, EN_1, EN_2]


def doc(*sections: Section, title: str = "Informe") -> LoadedDocument:
    return LoadedDocument(
        source="informe.pdf", title=title, sections=list(sections), kind="pdf", content_hash="x"
    )


def mixed_doc() -> LoadedDocument:
    return doc(
        Section(text=f"{ES_1}\n\n{ES_2}", page=1, heading="Resultados > Ventas"),
        Section(text="Resumen breve.", page=1, heading="Resultados > Resumen"),
        Section(text=f"{PT_1}\n\n{PT_2}", page=2, heading="Relatório"),
        Section(text="   \n\n  ", page=3, heading="Vacía"),
        Section(text=f"{EN_1}\n\n{EN_2}", page=3, heading=None),
    )


def overlap_count(previous: list[str], following: list[str]) -> int:
    """How many sentences opening ``following`` repeat the end of ``previous`` (the test
    texts have no repeated sentences, so the largest match is the overlap)."""
    for k in range(min(len(previous), len(following) - 1), 0, -1):
        if previous[-k:] == following[:k]:
            return k
    return 0


def new_sentences(chunks: list[Chunk]) -> list[str]:
    """The chunks' sentences in order, with each chunk's overlap with the previous chunk of
    the same section dropped."""
    out: list[str] = []
    previous: Chunk | None = None
    for chunk in chunks:
        sentences = split_sentences(chunk.text)
        if previous is not None and (previous.page, previous.heading) == (
            chunk.page,
            chunk.heading,
        ):
            sentences = sentences[overlap_count(split_sentences(previous.text), sentences) :]
        out.extend(sentences)
        previous = chunk
    return out


# --- count_tokens ---------------------------------------------------------------------


def test_count_tokens_counts_words_punctuation_and_subwords() -> None:
    assert count_tokens("") == 0
    assert count_tokens("  \n ") == 0
    assert count_tokens("Hola, mundo.") == 4
    assert count_tokens("3.14") == 3
    # 13 characters: one piece plus two for the 7 characters beyond the first 6.
    assert count_tokens("documentación") == 3
    assert count_tokens("abcdef") == 1
    assert count_tokens("abcdefg") == 2
    assert count_tokens("abcdefghijklm") == 3


def test_count_tokens_is_additive_over_whitespace() -> None:
    parts = split_sentences(ES_1)
    assert count_tokens(ES_1) == sum(count_tokens(p) for p in parts)


# --- split_sentences ------------------------------------------------------------------


def test_split_sentences_spanish() -> None:
    assert split_sentences(ES_1) == [
        "El Sr. García llegó a la oficina de la Av. Reforma a las 8.30 de la mañana.",
        "La Dra. Pérez, jefa del departamento, ya lo esperaba con el informe trimestral.",
        "¿Había revisado las cifras del último trimestre?",
        "Según la pág. 14 del documento, las ventas crecieron un 3,5 % y el margen bruto "
        "alcanzó 1.250.000,75 pesos.",
        "¡Era el mejor resultado desde 2019!",
        "Aun así, la Lic. Romero advirtió que los costos logísticos (p. ej. combustible, "
        "seguros, peajes, etc.) seguían subiendo.",
    ]


def test_split_sentences_spanish_quotes_and_ellipsis() -> None:
    assert split_sentences(ES_2) == [
        "La reunión continuó con la revisión del contrato firmado con Transportes del Norte "
        "S.A. y con el art. 7 del reglamento interno.",
        "El Ing. Martínez explicó que el proveedor había incumplido los plazos de entrega en "
        "tres ocasiones.",
        "Nadie quiso votar todavía…",
        "Preferían esperar la opinión del asesor jurídico.",
        '"No firmaremos nada sin una auditoría completa", dijo la Srta. Fuentes.',
        "Al final se acordó enviar una carta formal antes del viernes.",
    ]


def test_spanish_plural_initials_do_not_end_a_sentence() -> None:
    assert split_sentences("Vivo en EE. UU. desde 2010. Me gusta. Escribe a RR. HH. Gracias.") == [
        "Vivo en EE. UU. desde 2010.", "Me gusta.", "Escribe a RR. HH. Gracias.",
    ]  # fmt: skip


def test_legal_and_address_abbreviations_do_not_end_a_sentence() -> None:
    pt = (
        "Recurso contra acórdão do TJSP (Rel. Des. Carlos Garbi), conforme fls. 23 dos autos. "
        "Alega ofensa ao art. 6º, inc. VIII, da Lei n. 8.078/90. O Exmo. Sr. Min. Relator, "
        "p. ex., já decidiu assim. Pede danos morais, lucros cessantes etc. Não há custas."
    )
    assert split_sentences(pt) == [
        "Recurso contra acórdão do TJSP (Rel. Des. Carlos Garbi), conforme fls. 23 dos autos.",
        "Alega ofensa ao art. 6º, inc. VIII, da Lei n. 8.078/90.",
        "O Exmo. Sr. Min. Relator, p. ex., já decidiu assim.",
        "Pede danos morais, lucros cessantes etc.",
        "Não há custas.",
    ]
    es = (
        "Enviar a la Lic. Ana Pérez, Av. Gral. Paz 1234, Depto. 5, Col. Roma, Cd. de México. "
        "Según García et al. (2021), la frac. II aplica. Espera 5 min. Luego llama a la ext. 44."
    )
    assert split_sentences(es) == [
        "Enviar a la Lic. Ana Pérez, Av. Gral. Paz 1234, Depto. 5, Col. Roma, Cd. de México.",
        "Según García et al. (2021), la frac. II aplica.",
        "Espera 5 min.",
        "Luego llama a la ext. 44.",
    ]


def test_split_sentences_portuguese() -> None:
    assert split_sentences(PT_1) == [
        "O Sr. Oliveira mora na Av. Paulista, nº 1578, desde que se mudou para São Paulo.",
        "Ele trabalha como engenheiro na Construtora Horizonte Ltda. há mais de dez anos.",
        "A empresa, que pertencia à Cia. Paulista de Obras, foi comprada em 2015 por R$ "
        "2.500.000,00.",
        "Segundo o Prof. Mendes, a aquisição foi um bom negócio.",
        "Você sabia que a sede fica a poucos metros do museu?",
        "Muitos funcionários almoçam lá às sextas-feiras.",
    ]
    assert split_sentences(PT_2)[1] == (
        'A Dra. Souza comentou: "Os números são animadores, mas ainda há muito a fazer."'
    )


def test_split_sentences_english() -> None:
    assert split_sentences(EN_1) == [
        "Mr. Thompson moved to the U.S. in 1998 after finishing his degree in chemistry.",
        "He first worked for Dr. Patel at a small laboratory in Boston, where the team "
        "studied catalysts for clean fuels.",
        "The results were promising, i.e. the yield rose from 3.2 to 7.9 percent.",
        "Did anyone expect such a jump?",
        "Not really!",
        "Mrs. Patel, who ran the finance office, later said the grant had almost been cancelled.",
    ]
    assert split_sentences(EN_2) == [
        "The handbook written by J. R. R. Tolkien's publisher in 1954 is now a collector's item.",
        "Prices vary widely, e.g. a first edition sold for 4,500.00 dollars last year.",
        '"It was a bargain," the buyer told reporters.',
        "(The seller disagreed.)",
        "Ms. Carter, a rare-book dealer, estimates that fewer than 300 copies survive.",
        "Most of them are held by libraries and private collections.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "¿Vienes mañana? ¡Claro que sí! Te espero.",
            ["¿Vienes mañana?", "¡Claro que sí!", "Te espero."],
        ),
        ("¿De verdad?! Increíble.", ["¿De verdad?!", "Increíble."]),
        ("Dijo: «Ya voy.» Luego salió.", ["Dijo: «Ya voy.»", "Luego salió."]),
        ("Esperé... Nadie vino. Bueno... no sé.", ["Esperé...", "Nadie vino.", "Bueno... no sé."]),
        ("Pues… no sé. Quizá.", ["Pues… no sé.", "Quizá."]),
        ("El valor es 3.14 y no 1.000,50. Fin.", ["El valor es 3.14 y no 1.000,50.", "Fin."]),
        ("Dijo que no. No quería ir.", ["Dijo que no.", "No quería ir."]),
        ("See No. 5 in the list. Then stop.", ["See No. 5 in the list.", "Then stop."]),
        ("So did I. Then we left.", ["So did I.", "Then we left."]),
        (
            "Mrs. Smith vs. Mr. Jones, Jr. Case closed.",
            ["Mrs. Smith vs. Mr. Jones, Jr. Case closed."],
        ),
        ("Ver el Nº 4. Listo.", ["Ver el Nº 4.", "Listo."]),
        ("(Ver abajo.) Sigue aquí.", ["(Ver abajo.)", "Sigue aquí."]),
        ("", []),
        ("   \n\n  ", []),
        ("Sin punto final", ["Sin punto final"]),
    ],
)
def test_split_sentences_cases(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_sentences_blank_lines_and_lists() -> None:
    text = (
        "Pasos para instalar:\n"
        "- Descargar el paquete\n"
        "* Verificar la firma. Es importante.\n"
        "• Abrir la terminal\n"
        "1. Ejecutar el instalador. Esperar.\n"
        "2. Reiniciar\n"
        "\n"
        "Un párrafo nuevo\n"
        "que sigue en otra línea.\n\n\n"
        "Último"
    )
    assert split_sentences(text) == [
        "Pasos para instalar:",
        "- Descargar el paquete",
        "* Verificar la firma.",
        "Es importante.",
        "• Abrir la terminal",
        "1. Ejecutar el instalador.",
        "Esperar.",
        "2. Reiniciar",
        "Un párrafo nuevo\nque sigue en otra línea.",
        "Último",
    ]


def test_split_sentences_preserves_original_text() -> None:
    text = "  Primera   frase,\n con  espacios.   Segunda\tfrase.  "
    assert split_sentences(text) == ["Primera   frase,\n con  espacios.", "Segunda\tfrase."]
    for paragraph in PARAGRAPHS:
        for sentence in split_sentences(paragraph):
            assert sentence in paragraph
            assert sentence == sentence.strip()


# --- chunk_document -------------------------------------------------------------------


@pytest.mark.parametrize(("size", "overlap"), [(16, 0), (16, 8), (40, 10), (64, 32), (256, 32)])
def test_chunks_stay_within_size_and_are_well_formed(size: int, overlap: int) -> None:
    chunks = chunk_document(mixed_doc(), chunk_tokens=size, overlap_tokens=overlap)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip() == chunk.text
        assert chunk.text
        assert chunk.tokens == count_tokens(chunk.text)
        assert chunk.tokens <= size


def test_a_single_word_longer_than_a_chunk_is_its_own_chunk() -> None:
    word = "x" * 200  # 1 + 33 tokens by the approximation
    text = f"Antes del identificador. {word} Después del identificador."
    chunks = chunk_document(doc(Section(text=text)), chunk_tokens=16, overlap_tokens=4)
    assert [c.text for c in chunks if c.tokens > 16] == [word]
    assert "".join(c.text for c in chunks).count(word) == 1


def test_long_sentence_is_cut_on_word_boundaries_without_losing_text() -> None:
    words = [f"palabra{i}" for i in range(300)]
    text = " ".join(words)  # one sentence with no terminator at all
    chunks = chunk_document(doc(Section(text=text)), chunk_tokens=32, overlap_tokens=8)
    assert len(chunks) > 1
    assert all(c.tokens <= 32 for c in chunks)
    # Fragments of a sentence are never repeated as overlap, so the words line up exactly.
    assert " ".join(c.text for c in chunks).split() == words


def test_overlap_is_whole_trailing_sentences_within_budget() -> None:
    paragraph = " ".join(PARAGRAPHS)  # one paragraph far larger than a chunk
    # The longest sentence here has 35 tokens: each fits the overlap budget, and the budget
    # never has to shrink to make room for the next sentence (35 + 40 <= 96).
    overlap_tokens = 40
    chunks = chunk_document(
        doc(Section(text=paragraph)), chunk_tokens=96, overlap_tokens=overlap_tokens
    )
    assert len(chunks) > 3
    for previous, following in zip(chunks, chunks[1:], strict=False):
        prev_sentences = split_sentences(previous.text)
        next_sentences = split_sentences(following.text)
        k = overlap_count(prev_sentences, next_sentences)
        shared = next_sentences[:k]
        shared_tokens = sum(count_tokens(s) for s in shared)
        assert shared_tokens <= overlap_tokens
        # So there is always some overlap, and it takes as many trailing sentences as fit.
        assert k >= 1
        if k < len(prev_sentences):
            assert shared_tokens + count_tokens(prev_sentences[-k - 1]) > overlap_tokens
        assert following.text.startswith(shared[0])


def test_no_overlap_when_disabled() -> None:
    paragraph = " ".join(PARAGRAPHS)
    chunks = chunk_document(doc(Section(text=paragraph)), chunk_tokens=64, overlap_tokens=0)
    sentences = [s for c in chunks for s in split_sentences(c.text)]
    assert sentences == split_sentences(paragraph)


def test_sections_are_never_mixed() -> None:
    document = mixed_doc()
    chunks = chunk_document(document, chunk_tokens=48, overlap_tokens=12)
    by_key = {(s.page, s.heading): s for s in document.sections if s.text.strip()}
    assert {(c.page, c.heading) for c in chunks} == set(by_key)
    for chunk in chunks:
        section_sentences = split_sentences(by_key[(chunk.page, chunk.heading)].text)
        assert all(s in section_sentences for s in split_sentences(chunk.text))
    # The tiny section keeps its own chunk; the whitespace-only one yields none.
    assert [c.text for c in chunks if c.heading == "Resultados > Resumen"] == ["Resumen breve."]
    assert all(c.heading != "Vacía" for c in chunks)
    # Chunks come in document order.
    order = list(by_key)
    seen = [order.index((c.page, c.heading)) for c in chunks]
    assert seen == sorted(seen)


def test_page_boundary_starts_a_new_chunk_even_with_same_heading() -> None:
    chunks = chunk_document(
        doc(
            Section(text="Primera página.", page=1, heading="Anexo"),
            Section(text="Segunda página.", page=2, heading="Anexo"),
        ),
        chunk_tokens=256,
    )
    assert [(c.text, c.page, c.heading, c.index) for c in chunks] == [
        ("Primera página.", 1, "Anexo", 0),
        ("Segunda página.", 2, "Anexo", 1),
    ]


def test_paragraphs_that_fit_are_kept_whole() -> None:
    text = "\n\n".join(PARAGRAPHS)
    largest = max(count_tokens(p) for p in PARAGRAPHS)
    chunks = chunk_document(doc(Section(text=text)), chunk_tokens=largest, overlap_tokens=0)
    for paragraph in PARAGRAPHS:
        assert any(paragraph in c.text for c in chunks)
    # Paragraphs in one chunk are joined by a blank line, as in the source.
    everything = chunk_document(doc(Section(text=text)), chunk_tokens=4096, overlap_tokens=0)
    assert [c.text for c in everything] == [text]


@pytest.mark.parametrize(("size", "overlap"), [(16, 8), (48, 12), (100, 50), (256, 32)])
def test_no_text_is_lost(size: int, overlap: int) -> None:
    document = mixed_doc()
    chunks = chunk_document(document, chunk_tokens=size, overlap_tokens=overlap)
    source = [s for section in document.sections for s in split_sentences(section.text)]
    if size >= 48:  # no sentence of the test text is longer than that
        assert new_sentences(chunks) == source
    # At any size, with overlaps dropped, the characters come back exactly in order.
    squashed_source = re.sub(r"\s+", "", "".join(source))
    assert re.sub(r"\s+", "", "".join(new_sentences(chunks))) == squashed_source


def test_large_document_is_fast() -> None:
    parts: list[str] = []
    while sum(len(p) for p in parts) < 100_000:
        parts.append(PARAGRAPHS[len(parts) % len(PARAGRAPHS)])
    sections = [
        Section(text="\n\n".join(parts[i : i + 12]), page=i // 12 + 1)
        for i in range(0, len(parts), 12)
    ]
    document = doc(*sections)
    started = time.perf_counter()
    chunks = chunk_document(document)
    elapsed = time.perf_counter() - started
    print(f"chunked {len(document.text)} characters into {len(chunks)} chunks in {elapsed:.3f}s")
    assert all(c.tokens <= 256 for c in chunks)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"chunk_tokens": 15}, "chunk_tokens"),
        ({"chunk_tokens": 0}, "chunk_tokens"),
        # Named as the collection's setting is, in the API and the CLI.
        ({"chunk_tokens": 64, "overlap_tokens": -1}, "chunk_overlap"),
        ({"chunk_tokens": 64, "overlap_tokens": 33}, "chunk_overlap"),
        ({"chunk_tokens": 17, "overlap_tokens": 9}, "chunk_overlap"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, int], param: str) -> None:
    with pytest.raises(InvalidRequest, match=param) as info:
        chunk_document(mixed_doc(), **kwargs)
    assert info.value.param == param


def test_largest_valid_overlap_is_half() -> None:
    assert chunk_document(mixed_doc(), chunk_tokens=64, overlap_tokens=32)
    assert chunk_document(mixed_doc(), chunk_tokens=17, overlap_tokens=8)
    assert chunk_document(doc(), chunk_tokens=16, overlap_tokens=0) == []


# --- embedding_text -------------------------------------------------------------------


def test_embedding_text_prefixes_title_and_heading() -> None:
    chunk = Chunk(text="Se renueva cada año.", index=0, tokens=5, heading="Licencias > Renovación")
    assert (
        embedding_text(chunk, "Manual") == "Manual > Licencias > Renovación\n\nSe renueva cada año."
    )
    plain = Chunk(text="Se renueva cada año.", index=0, tokens=5)
    assert embedding_text(plain, "Manual") == "Manual\n\nSe renueva cada año."
    assert embedding_text(plain, "") == "Se renueva cada año."
