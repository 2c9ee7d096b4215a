"""Loaders on small real files written by each test: Markdown, HTML, a hand-made PDF, a
python-docx document, CSV, JSONL and SQLite; and the one-line errors for bad inputs."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from genaiops.rag.documents import LoadError
from genaiops.rag.loaders import SUPPORTED, iter_files, load_bytes, load_file, load_sql


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(call: object, *args: object, **kwargs: object) -> str:
    assert callable(call)
    with pytest.raises(LoadError) as info:
        call(*args, **kwargs)
    message = info.value.message
    assert "\n" not in message
    return message


# --- A minimal PDF written by hand: pypdf reads PDFs but cannot lay out text. ---------


def make_pdf(pages: list[bytes], title: bytes | None = None) -> bytes:
    """A valid PDF with one Helvetica text stream per page and a correct xref table.

    Page texts are PDF string bytes (WinAnsiEncoding: octal escapes such as \\347 for ç);
    an empty text gives a page without text.
    """
    count = len(pages)
    font = 3 + 2 * count
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
    ]
    for i, text in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>".encode()
        )
        stream = b""
        if text:
            shown = b" ".join(b"(" + line + b") Tj T*" for line in text.split(b"\n"))
            stream = b"BT /F1 12 Tf 14 TL 72 720 Td " + shown + b" ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    trailer = "/Root 1 0 R"
    if title is not None:
        objects.append(b"<< /Title (" + title + b") >>")
        trailer += f" /Info {len(objects)} 0 R"
    trailer += f" /Size {len(objects) + 1}"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< {trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# --- Plain text ------------------------------------------------------------------------


def test_txt_one_section_titled_by_stem(tmp_path: Path) -> None:
    path = write(tmp_path / "notas.txt", "Olá, mundo.\nSegunda linha com ação.\n")
    [doc] = load_file(path)
    assert doc.kind == "txt"
    assert doc.title == "notas"
    assert doc.source == str(path)
    assert doc.locator is None
    assert doc.text == "Olá, mundo.\nSegunda linha com ação."
    assert len(doc.sections) == 1 and doc.sections[0].heading is None


def test_txt_falls_back_to_latin1(tmp_path: Path) -> None:
    path = tmp_path / "antiguo.txt"
    path.write_bytes("Información en español: año, niño.".encode("latin-1"))
    [doc] = load_file(path)
    assert doc.text == "Información en español: año, niño."
    # Windows' "ANSI" files: the euro sign, dashes and curly quotes are not C1 controls.
    ansi = "El precio es 5 € – “oferta” de otoño."
    path.write_bytes(ansi.encode("cp1252"))
    [doc] = load_file(path)
    assert doc.text == ansi
    # Bytes Windows-1252 leaves undefined still read as latin-1.
    path.write_bytes(("año " * 50).encode("latin-1") + b"\x81")
    [doc] = load_file(path)
    assert doc.text.startswith("año ")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_txt_in_utf16_with_its_mark_is_text(tmp_path: Path, encoding: str) -> None:
    # Windows tools (Notepad's "Unicode", PowerShell's Out-File) save UTF-16 with a BOM.
    path = tmp_path / "notas.txt"
    text = "Notas de la reunión: el niño pidió café."
    data = text.encode(encoding)
    path.write_bytes(data if encoding == "utf-16" else b"\xfe\xff" + data)
    [doc] = load_file(path)
    assert doc.text == text


def test_binary_junk_named_txt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foto.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    assert load_error(load_file, path) == "foto.txt is not a text file"
    # Control characters without any NUL byte are caught by the non-printable ratio.
    path.write_bytes(bytes(range(1, 32)) * 20 + b"texto")
    assert load_error(load_file, path) == "foto.txt is not a text file"


def test_source_names_the_documents_and_the_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "tmp1234.txt", "Hello")
    [doc] = load_file(path, source="report.txt")
    assert doc.source == "report.txt"
    assert doc.title == "report"
    path.write_bytes(b"")
    assert load_error(load_file, path, source="uploads/report.txt") == "report.txt is empty"


# --- Markdown --------------------------------------------------------------------------

GUIA_MD = """\
---
title: Guía rápida
author: "Ana Pérez"
tags:
  - rag
---
Texto antes del primer título.

# Guía

Introducción a la guía.

## Instalación

Ejecuta el instalador:

```bash
# esto es un comentario, no un título
pip install genaiops
```

### Linux ###

Usa apt.

## Uso

~~~
## tampoco es un título
~~~

# Apêndice

Notas finais.
"""


def test_markdown_heading_paths_fences_and_front_matter(tmp_path: Path) -> None:
    [doc] = load_file(write(tmp_path / "guia.md", GUIA_MD))
    assert doc.kind == "md"
    assert doc.title == "Guía"
    assert doc.metadata == {"title": "Guía rápida", "author": "Ana Pérez"}
    assert [s.heading for s in doc.sections] == [
        None,
        "Guía",
        "Guía > Instalación",
        "Guía > Instalación > Linux",
        "Guía > Uso",
        "Apêndice",
    ]
    assert doc.sections[0].text == "Texto antes del primer título."
    install = doc.sections[2].text
    assert "# esto es un comentario, no un título" in install
    assert install.endswith("```")
    assert "## tampoco es un título" in doc.sections[4].text
    assert "author" not in doc.text and "---" not in doc.text


def test_markdown_without_h1_or_front_matter(tmp_path: Path) -> None:
    text = "---\n\nA rule, then text.\n\n---\n\n## Only level two\n\nBody.\n#hashtag line\n"
    [doc] = load_file(write(tmp_path / "notes.markdown", text))
    assert doc.title == "notes"
    assert doc.metadata == {}
    assert doc.sections[0].heading is None and "A rule, then text." in doc.sections[0].text
    assert doc.sections[1].heading == "Only level two"
    assert doc.sections[1].text == "Body.\n#hashtag line"


def test_markdown_suffix_is_case_insensitive(tmp_path: Path) -> None:
    [doc] = load_file(write(tmp_path / "LEEME.MD", "# Hola\n\nMundo"))
    assert doc.kind == "md" and doc.sections[0].heading == "Hola"


# --- HTML ------------------------------------------------------------------------------

PAGINA_HTML = """<!DOCTYPE html>
<html><head><title>Manual do usuário</title>
<style>body { color: red; }</style>
<script>var segredo = "não indexar";</script></head>
<body>
<header><p>Cabeçalho do site</p></header>
<nav><a href="/">Início</a></nav>
<h1>Manual</h1>
<p>Bem-vindo   ao
   manual.</p>
<!-- um comentário -->
<h2>Instalação</h2>
<ul><li>Baixe o pacote</li><li>Execute <b>o instalador</b></li></ul>
<h3>Requisitos</h3>
<table><tr><th>Sistema</th><th>Versão</th></tr><tr><td>Linux</td><td>6.1</td></tr></table>
<h2>Uso</h2>
<div>Texto solto<br>na linha seguinte</div>
<noscript>Ative o JavaScript</noscript>
<script>alert("x")</script>
<footer>Rodapé</footer>
</body></html>
"""


def test_html_heading_paths_and_dropped_elements(tmp_path: Path) -> None:
    [doc] = load_file(write(tmp_path / "manual.html", PAGINA_HTML))
    assert doc.kind == "html"
    assert doc.title == "Manual do usuário"
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("Manual", "Bem-vindo ao manual."),
        ("Manual > Instalação", "Baixe o pacote\nExecute o instalador"),
        ("Manual > Instalação > Requisitos", "Sistema | Versão\nLinux | 6.1"),
        ("Manual > Uso", "Texto solto\nna linha seguinte"),
    ]
    for hidden in ("segredo", "color", "Cabeçalho", "Início", "JavaScript", "Rodapé", "coment"):
        assert hidden not in doc.text


def test_html_article_header_and_nested_tables(tmp_path: Path) -> None:
    page = tmp_path / "reembolsos.html"
    page.write_text(
        "<html><body><header><a href='/'>Inicio</a> Menú</header><article><header>"
        "<h1>Política de reembolsos</h1><p>Publicado 2024</p></header>"
        "<p>Los reembolsos se procesan en 30 días.</p><table><tr><td>Plan</td><td>"
        "<table><tr><td>Oro</td><td>90 días</td></tr></table></td></tr></table>"
        "</article><footer>© Empresa</footer></body></html>",
        encoding="utf-8",
    )
    [doc] = load_file(page)
    # The page's header and footer are chrome; the article's header is its title.
    assert doc.title == "Política de reembolsos"
    lines = "\n".join(s.text for s in doc.sections).split("\n")
    assert lines == [
        "Publicado 2024",
        "Los reembolsos se procesan en 30 días.",
        "Plan | Oro 90 días",
    ]
    assert doc.sections[0].heading == "Política de reembolsos"


def test_html_title_falls_back_to_h1_then_stem(tmp_path: Path) -> None:
    [doc] = load_file(write(tmp_path / "a.htm", "<h1>Primer título</h1><p>Hola</p>"))
    assert doc.title == "Primer título"
    [doc] = load_file(write(tmp_path / "b.html", "<p>Sólo texto</p>"))
    assert doc.title == "b"
    assert doc.sections[0].heading is None


def test_html_without_text_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "vacia.html", "<html><script>x()</script></html>")
    assert load_error(load_file, path) == "vacia.html has no text"


# --- PDF -------------------------------------------------------------------------------


def test_pdf_pages_and_title(tmp_path: Path) -> None:
    path = tmp_path / "relatorio.pdf"
    path.write_bytes(
        make_pdf(
            [rb"Guia de instala\347\343o", b"Second page about pricing\nLine two"],
            title=rb"Relat\363rio anual",
        )
    )
    [doc] = load_file(path)
    assert doc.kind == "pdf"
    assert doc.title == "Relatório anual"
    assert [s.page for s in doc.sections] == [1, 2]
    assert doc.sections[0].text == "Guia de instalação"
    assert "pricing" in doc.sections[1].text and "Line two" in doc.sections[1].text
    assert doc.metadata == {"pages": 2}


def test_pdf_skips_empty_pages_and_keeps_numbers(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf([b"First", b"", b"Third"]))
    [doc] = load_file(path)
    assert doc.title == "report"
    assert [(s.page, s.text) for s in doc.sections] == [(1, "First"), (3, "Third")]


def test_pdf_without_text_is_refused_as_scanned(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf([b"", b""]))
    message = load_error(load_file, path)
    assert message.startswith("scan.pdf has no extractable text")
    assert "scanned images" in message and "OCR" in message


def test_corrupt_pdf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf([b"Hello"])[:60])
    assert load_error(load_file, path).startswith("report.pdf: cannot read PDF: ")
    path.write_bytes(b"this is not a pdf at all")
    assert load_error(load_file, path).startswith("report.pdf: cannot read PDF: ")
    # The error is the one report: pypdf's own log lines do not reach the terminal (in a
    # process of its own, where no test harness catches the log).
    script = (
        "import sys; from pathlib import Path; from genaiops.rag.loaders import load_file\n"
        "try:\n    load_file(Path(sys.argv[1]))\nexcept Exception as exc:\n    print(exc)"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.stdout.startswith("report.pdf: cannot read PDF") and run.stderr == ""


def test_encrypted_pdf_is_refused(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secreto", algorithm="RC4-128")
    path = tmp_path / "secreto.pdf"
    with path.open("wb") as f:
        writer.write(f)
    message = load_error(load_file, path)
    assert message.startswith("secreto.pdf: cannot read PDF: it is encrypted")


# --- DOCX ------------------------------------------------------------------------------


def make_docx(path: Path, *, title: str = "") -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_paragraph("Documento interno.")
    document.add_heading("Política de devoluciones", level=1)
    document.add_paragraph("Aceptamos devoluciones en 30 días.")
    document.add_heading("Excepciones", level=2)
    document.add_paragraph("Productos personalizados.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Producto"
    table.cell(0, 1).text = "Plazo"
    table.cell(1, 0).text = "Camiseta"
    table.cell(1, 1).text = "15 días"
    document.add_heading("Contato", level=1)
    document.add_paragraph("Escreva para suporte@example.com.")
    document.save(str(path))
    return path


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    [doc] = load_file(make_docx(tmp_path / "politica.docx"))
    assert doc.kind == "docx"
    assert doc.title == "Política de devoluciones"
    assert [(s.heading, s.text) for s in doc.sections] == [
        (None, "Documento interno."),
        ("Política de devoluciones", "Aceptamos devoluciones en 30 días."),
        (
            "Política de devoluciones > Excepciones",
            "Productos personalizados.\nProducto | Plazo\nCamiseta | 15 días",
        ),
        ("Contato", "Escreva para suporte@example.com."),
    ]


def test_docx_nested_tables_and_content_controls_keep_their_text(tmp_path: Path) -> None:
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_paragraph("Condiciones del contrato.")
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "Reembolsos"
    table.cell(0, 1).add_table(rows=1, cols=1).cell(0, 0).text = "Plazo de 45 días"
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    control = parse_xml(
        f"<w:sdt {w}><w:sdtPr/><w:sdtContent><w:p><w:r><w:t>Valor del contrato: 120000 USD"
        "</w:t></w:r></w:p></w:sdtContent></w:sdt>"
    )
    document.element.body.insert(1, control)
    path = tmp_path / "contrato.docx"
    document.save(str(path))
    [doc] = load_file(path)
    text = "\n".join(s.text for s in doc.sections)
    assert text.split("\n") == [
        "Condiciones del contrato.",
        "Valor del contrato: 120000 USD",
        "Reembolsos | Plazo de 45 días",
    ]


def test_docx_title_from_core_properties(tmp_path: Path) -> None:
    [doc] = load_file(make_docx(tmp_path / "p.docx", title="Manual de políticas"))
    assert doc.title == "Manual de políticas"


def test_corrupt_docx_is_refused(tmp_path: Path) -> None:
    data = make_docx(tmp_path / "ok.docx").read_bytes()
    path = tmp_path / "roto.docx"
    path.write_bytes(data[: len(data) // 2])
    assert load_error(load_file, path).startswith("roto.docx: cannot read DOCX: ")


def test_a_docx_that_unpacks_to_too_much_xml_is_refused(tmp_path: Path) -> None:
    import zipfile

    ok = zipfile.ZipFile(make_docx(tmp_path / "ok.docx"))
    bomb = tmp_path / "bomba.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for info in ok.infolist():
            data = ok.read(info)
            if info.filename == "word/document.xml":
                # 80 MB of spaces inside the body: a few hundred KB once compressed.
                data = data.replace(b"<w:body>", b"<w:body>" + b" " * (80 * 1024 * 1024), 1)
            out.writestr(info.filename, data)
    assert bomb.stat().st_size < 1024 * 1024
    message = load_error(load_file, bomb)
    assert message.startswith("bomba.docx: cannot read DOCX: it unpacks to 80 MB")


# --- CSV and JSONL ---------------------------------------------------------------------

FAQ_CSV = """\
id,pregunta,respuesta,idioma,extra
p1,¿Cómo instalo?,"Usa pip install genaiops.
Luego ejecuta genaiops serve.",es,x
p2,Como instalo?,Use pip.,pt,y
p3,Sin respuesta,,es,z
p4,How do I install?,Use pip.,en,w
"""


def test_csv_rows_become_documents(tmp_path: Path) -> None:
    path = write(tmp_path / "faq.csv", FAQ_CSV)
    docs = load_file(path, text_field="respuesta", id_field="id", metadata_fields=["idioma"])
    assert [d.locator for d in docs] == ["p1", "p2", "p4"]
    first = docs[0]
    assert first.kind == "csv"
    assert first.source == str(path)
    assert first.key == f"{path}#p1"
    assert first.title == "faq #p1"
    assert first.text == "Usa pip install genaiops.\nLuego ejecuta genaiops serve."
    assert first.metadata == {"idioma": "es", "row": 1}
    assert docs[2].metadata == {"idioma": "en", "row": 4}
    # Same text, different rows: the hash covers the whole row.
    assert docs[1].content_hash != docs[2].content_hash


def test_csv_defaults_to_row_numbers_and_no_metadata(tmp_path: Path) -> None:
    path = write(tmp_path / "faq.csv", FAQ_CSV)
    docs = load_file(path, text_field="pregunta")
    assert [d.locator for d in docs] == ["1", "2", "3", "4"]
    assert all(d.metadata == {"row": int(d.locator or "")} for d in docs)


def test_csv_semicolon_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "planilha.csv", "codigo;texto\n1;Olá; tudo bem?\n2;Até logo\n")
    docs = load_file(path, text_field="texto", id_field="codigo")
    assert [(d.locator, d.text) for d in docs] == [("1", "Olá"), ("2", "Até logo")]


def test_csv_with_a_long_text_cell(tmp_path: Path) -> None:
    # Over the csv module's default limit of 128 KiB per field.
    article = "Los reembolsos se procesan en treinta días hábiles. " * 4000
    path = write(tmp_path / "articulos.csv", f'id,texto\n1,"{article}"\n2,Corto\n')
    docs = load_file(path, text_field="texto", id_field="id")
    assert [(d.locator, len(d.text)) for d in docs] == [("1", len(article.strip())), ("2", 5)]


def test_csv_field_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "faq.csv", FAQ_CSV)
    assert load_error(load_file, path) == "faq.csv: text_field is required for CSV sources"
    assert load_error(load_file, path, text_field="texto") == (
        "faq.csv: column 'texto' not found; columns: id, pregunta, respuesta, idioma, extra"
    )
    message = load_error(load_file, path, text_field="respuesta", metadata_fields=["pais"])
    assert message.startswith("faq.csv: column 'pais' not found")
    write(tmp_path / "dup.csv", "id,t\na,uno\na,dos\n")
    assert load_error(load_file, tmp_path / "dup.csv", text_field="t", id_field="id") == (
        "dup.csv: row 2 repeats id 'a' of row 1"
    )


def test_jsonl_rows_become_documents(tmp_path: Path) -> None:
    lines = [
        {"id": 10, "texto": "Primeira resposta.", "categoria": "conta", "n": 1},
        {"id": 11, "texto": "", "categoria": "vazia"},
        {"id": 12, "texto": "Tercera respuesta.", "categoria": {"nivel": 2}},
    ]
    path = write(
        tmp_path / "faq.jsonl",
        "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n",
    )
    docs = load_file(path, text_field="texto", id_field="id", metadata_fields=["categoria"])
    assert [(d.locator, d.text, d.kind) for d in docs] == [
        ("10", "Primeira resposta.", "jsonl"),
        ("12", "Tercera respuesta.", "jsonl"),
    ]
    assert docs[0].metadata == {"categoria": "conta", "row": 1}
    assert docs[1].metadata == {"categoria": {"nivel": 2}, "row": 3}
    # The hash covers the row and what is taken from it: the same options give the same
    # hash, other fields chosen from the same row another one.
    again = load_file(path, text_field="texto", id_field="id", metadata_fields=["categoria"])
    assert [d.content_hash for d in again] == [d.content_hash for d in docs]
    plain = load_file(path, text_field="texto", id_field="id")
    assert plain[0].content_hash != docs[0].content_hash
    # The row number is the line number.
    assert [d.locator for d in load_file(path, text_field="texto")] == ["1", "3"]


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "data.jsonl", '{"text": "ok"}\n\n{"text": "broken"\n')
    assert load_error(load_file, path, text_field="text").startswith(
        "data.jsonl: line 3 is not valid JSON: "
    )
    write(path, '{"text": "ok"}\n["not", "an", "object"]\n')
    assert load_error(load_file, path, text_field="text") == (
        "data.jsonl: line 2 is not a JSON object"
    )
    write(path, '{"text": "ok"}\n{"body": "no text field"}\n')
    assert load_error(load_file, path, text_field="text") == (
        "data.jsonl: line 2 has no field 'text'"
    )
    assert load_error(load_file, path) == "data.jsonl: text_field is required for JSONL sources"


# --- SQL -------------------------------------------------------------------------------


def make_db(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute(
            'CREATE TABLE "preguntas frecuentes" (id TEXT, cuerpo TEXT, idioma TEXT, votos INT)'
        )
        conn.executemany(
            'INSERT INTO "preguntas frecuentes" VALUES (?, ?, ?, ?)',
            [
                ("a1", "Reinicia el servicio.", "es", 3),
                ("a2", None, "es", 0),
                ("a3", "Reinicie o serviço.", "pt", 5),
            ],
        )
    conn.close()
    return f"sqlite:///{path}"


def test_sql_table(tmp_path: Path) -> None:
    url = make_db(tmp_path / "kb.db")
    docs = load_sql(
        url,
        table="preguntas frecuentes",
        text_field="cuerpo",
        id_field="id",
        metadata_fields=["idioma", "votos"],
    )
    assert [(d.locator, d.text) for d in docs] == [
        ("a1", "Reinicia el servicio."),
        ("a3", "Reinicie o serviço."),
    ]
    # The source names the table and, by 8 hex digits, the database.
    assert re.fullmatch(r"sql:preguntas frecuentes@[0-9a-f]{8}", docs[0].source)
    (tmp_path / "sub").mkdir()
    elsewhere = tmp_path / "sub" / ".." / "kb.db"
    same = load_sql(f"sqlite:///{elsewhere}", table="preguntas frecuentes", text_field="cuerpo")
    assert same[0].source == docs[0].source
    assert docs[0].kind == "sql"
    assert docs[1].metadata == {"idioma": "pt", "votos": 5, "row": 3}
    again = load_sql(url, table="preguntas frecuentes", text_field="cuerpo", id_field="id",
                     metadata_fields=["idioma", "votos"])  # fmt: skip
    assert [d.content_hash for d in again] == [d.content_hash for d in docs]
    fewer = load_sql(url, table="preguntas frecuentes", text_field="cuerpo", id_field="id")
    assert fewer[0].content_hash != docs[0].content_hash


def test_sql_query(tmp_path: Path) -> None:
    import hashlib

    url = make_db(tmp_path / "kb.db")
    query = "SELECT id, cuerpo FROM \"preguntas frecuentes\" WHERE idioma = 'pt'"
    [doc] = load_sql(url, query=query, text_field="cuerpo")
    digest = hashlib.sha256(query.encode()).hexdigest()[:12]
    assert re.fullmatch(rf"sql:query:{digest}@[0-9a-f]{{8}}", doc.source)
    assert doc.locator == "1"
    assert doc.text == "Reinicie o serviço."
    assert doc.metadata == {"row": 1}


def test_sql_errors(tmp_path: Path) -> None:
    url = make_db(tmp_path / "kb.db")
    message = load_error(load_sql, url, table="nope; DROP TABLE x", text_field="cuerpo")
    assert message.startswith("sql:nope; DROP TABLE x: cannot read sqlite:///")
    assert "no such table" in message
    assert load_error(load_sql, url, table="preguntas frecuentes", text_field="texto") == (
        "sql:preguntas frecuentes: column 'texto' not found; columns: id, cuerpo, idioma, votos"
    )
    assert "syntax error" in load_error(load_sql, url, query="SELEC nada", text_field="x")
    assert load_error(load_sql, "not a url", table="t", text_field="x") == (
        "sql:t: invalid database URL"
    )
    missing = tmp_path / "missing.db"
    assert load_error(load_sql, f"sqlite:///{missing}", table="t", text_field="x") == (
        f"sql:t: database file not found: {missing}"
    )
    assert not missing.exists()
    message = load_error(load_sql, "nodialect://user:hunter2@host/db", table="t", text_field="x")
    assert message.startswith("sql:t: cannot use nodialect://user:***@host/db")
    assert "hunter2" not in message
    assert load_error(load_sql, url, text_field="x") == ("sql: give exactly one of query and table")
    assert load_error(load_sql, url, table="t", query="SELECT 1", text_field="x") == (
        "sql: give exactly one of query and table"
    )


# --- Limits and bad inputs -------------------------------------------------------------


def test_empty_files_are_refused(tmp_path: Path) -> None:
    for name in ("vacio.txt", "vacio.pdf", "vacio.docx", "vacio.csv"):
        (tmp_path / name).write_bytes(b"")
        assert load_error(load_file, tmp_path / name) == f"{name} is empty"
    write(tmp_path / "blancos.md", "  \n\n\t \n")
    assert load_error(load_file, tmp_path / "blancos.md") == "blancos.md is empty"
    assert load_error(load_bytes, b"\n", "x.jsonl", text_field="t") == "x.jsonl is empty"


def test_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "grande.txt", "a" * 1025)
    assert load_error(load_file, path, max_bytes=1024) == (
        "grande.txt is larger than the 1 KB limit"
    )
    assert load_error(load_bytes, b"a" * 1025, "grande.txt", max_bytes=1024) == (
        "grande.txt is larger than the 1 KB limit"
    )
    assert load_file(path, max_bytes=1025)[0].text == "a" * 1025


def test_default_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.pdf"
    with path.open("wb") as f:
        # Sparse: no 50 MB are written, and the loader must not read them either.
        f.truncate(50 * 1024 * 1024 + 1)
    assert load_error(load_file, path) == "huge.pdf is larger than the 50 MB limit"


def test_unsupported_suffix_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path / "hoja.xlsx", "x")
    assert load_error(load_file, path) == (
        "hoja.xlsx: unsupported file type (.xlsx); supported: " + ", ".join(SUPPORTED)
    )
    assert load_error(load_bytes, b"x", "LEEME").startswith(
        "LEEME: unsupported file type (no suffix); supported: .txt, .md"
    )
    assert load_error(load_file, tmp_path / "nada.md") == "nada.md: file not found"


# --- load_bytes and hashing ------------------------------------------------------------


def test_load_bytes_equals_load_file(tmp_path: Path) -> None:
    cases = {
        "guia.md": GUIA_MD.encode(),
        "manual.html": PAGINA_HTML.encode(),
        "faq.csv": FAQ_CSV.encode(),
        "r.pdf": make_pdf([b"Uno", b"Dos"]),
        "p.docx": make_docx(tmp_path / "source.docx").read_bytes(),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        text_field = "respuesta" if name.endswith(".csv") else None
        from_file = load_file(path, source=name, text_field=text_field)
        from_bytes = load_bytes(data, name, text_field=text_field)
        assert from_bytes == from_file
        assert from_bytes[0].source == name


def test_content_hash_stable_and_changes_on_edit(tmp_path: Path) -> None:
    path = write(tmp_path / "guia.md", GUIA_MD)
    first = load_file(path)[0].content_hash
    assert load_file(path)[0].content_hash == first
    write(path, GUIA_MD.replace("Usa apt.", "Usa apt o dnf."))
    assert load_file(path)[0].content_hash != first

    csv_path = write(tmp_path / "faq.csv", FAQ_CSV)
    before = {d.locator: d.content_hash for d in load_file(csv_path, text_field="respuesta")}
    write(csv_path, FAQ_CSV.replace("Use pip.,pt", "Use o pip.,pt"))
    after = {d.locator: d.content_hash for d in load_file(csv_path, text_field="respuesta")}
    assert after["1"] == before["1"] and after["4"] == before["4"]
    assert after["2"] != before["2"]


# --- iter_files ------------------------------------------------------------------------


def test_iter_files_follows_links_once(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "s.txt").write_text("canales compartidos")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "d.txt").write_text("canals")
    (docs / "linkdir").symlink_to(shared, target_is_directory=True)
    (docs / "linkfile.txt").symlink_to(docs / "sub" / "d.txt")
    (docs / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (docs / "sub" / "up").symlink_to(docs, target_is_directory=True)  # a loop
    names = [p.relative_to(docs).as_posix() for p in iter_files(docs)]
    # The linked folder is read, the file reached twice is one document, the dangling
    # link and the loop are skipped.
    assert names == ["linkdir/s.txt", "linkfile.txt"]


def test_iter_files_recursive_sorted_filtered(tmp_path: Path) -> None:
    for rel in (
        "b.md",
        "a.txt",
        "docs/guia.pdf",
        "docs/sub/notas.MD",
        "docs/borrador.tmp.md",
        "drafts/x.md",
        "drafts/deep/y.md",
        "imagen.png",
        ".hidden.md",
        ".git/config.txt",
        "docs/.cache/z.md",
    ):
        write(tmp_path / rel, "x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files(tmp_path)]
    assert found == [
        "a.txt",
        "b.md",
        "docs/borrador.tmp.md",
        "docs/guia.pdf",
        "docs/sub/notas.MD",
        "drafts/deep/y.md",
        "drafts/x.md",
    ]
    kept = iter_files(tmp_path, exclude=["drafts/**", "*.tmp.md"])
    assert [p.relative_to(tmp_path).as_posix() for p in kept] == [
        "a.txt",
        "b.md",
        "docs/guia.pdf",
        "docs/sub/notas.MD",
    ]
    only = iter_files(tmp_path, include=["docs/**"], exclude=["**/notas.MD"])
    assert [p.relative_to(tmp_path).as_posix() for p in only] == [
        "docs/borrador.tmp.md",
        "docs/guia.pdf",
    ]
    assert [p.name for p in iter_files(tmp_path, include=["*.pdf", "a.txt"])] == [
        "a.txt",
        "guia.pdf",
    ]


def test_iter_files_single_file_and_missing(tmp_path: Path) -> None:
    path = write(tmp_path / "solo.txt", "x")
    assert iter_files(path) == [path]
    missing = tmp_path / "no-existe"
    assert load_error(iter_files, missing) == f"{missing}: no such file or directory"


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, genaiops.rag.loaders\n"
        "heavy = {'pypdf', 'docx', 'bs4', 'sqlalchemy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
