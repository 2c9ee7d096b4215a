"""genaiops collections / ingest / search / documents / ask, in subprocesses against a real
data directory."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import genaiops_cli


def cli(data: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    result = genaiops_cli(*args, data_dir=data, check=check)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    cli(root, "collections", "create", "kb", "--language", "pt", "--tenant", "acme")
    return root


def test_ingest_with_some_bad_files_goes_on_and_exits_3(data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "bom.md").write_text("# Bom\n\nUm documento legível.", encoding="utf-8")
    (folder / "vazio.txt").write_text("", encoding="utf-8")
    (folder / "quebrado.pdf").write_bytes(b"%PDF-1.4 not really")
    ingest = ("ingest", str(folder), "--collection", "kb", "--tenant", "acme", "--json")
    code, out, _ = cli(data, *ingest, check=False)
    report = json.loads(out)
    assert code == 3 and report["added"] == 1 and len(report["failed"]) == 2
    (folder / "bom.md").unlink()
    code, out, _ = cli(data, *ingest, check=False)
    assert code == 1 and json.loads(out)["documents"] == 0  # nothing readable at all


def test_ingest_include_and_exclude_globs(data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "wiki"
    (folder / "rh").mkdir(parents=True)
    (folder / "rh" / "ferias.md").write_text("# Férias\n\nTrinta dias por ano.", "utf-8")
    (folder / "rh" / "rascunho.md").write_text("# Rascunho\n\nNão publicar.", "utf-8")
    (folder / "ti.txt").write_text("Senhas mudam a cada noventa dias.", "utf-8")
    code, out, _ = cli(
        data, "ingest", str(folder), "--collection", "kb", "--tenant", "acme", "--json",
        "--include", "*.md", "--exclude", "*/rascunho.md",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["added"] == 1
    _, out, _ = cli(data, "documents", "list", "--collection", "kb", "--tenant", "acme", "--json")
    assert [Path(d["source"]).name for d in json.loads(out)] == ["ferias.md"]


def test_collections_ingest_search_documents(data: Path, tmp_path: Path) -> None:
    faq = tmp_path / "faq.csv"
    faq.write_text(
        "id;pergunta;area\n1;Como solicito reembolso de despesas de viagem?;financeiro\n"
        "2;Qual é o prazo para pedir férias?;rh\n",
        encoding="utf-8",
    )
    code, out, err = cli(
        data,
        "ingest",
        str(faq),
        "--collection",
        "kb",
        "--tenant",
        "acme",
        "--text-field",
        "pergunta",
        "--id-field",
        "id",
        "--metadata-field",
        "area",
        "--json",
    )
    report = json.loads(out)
    assert report["added"] == 2 and report["failed"] == []
    assert "files/s" in err and "chunks/s" in err  # the progress bar

    _, out, _ = cli(data, "search", "ferias", "--collection", "kb", "--tenant", "acme", "--json")
    hits = json.loads(out)
    assert hits[0]["locator"] == "2" and hits[0]["metadata"]["area"] == "rh"
    _, out, _ = cli(
        data,
        "search",
        "reembolso",
        "--collection",
        "kb",
        "--tenant",
        "acme",
        "--filter",
        "area=rh",
        "--mode",
        "lexical",
        "--json",
    )
    assert json.loads(out) == []

    _, out, _ = cli(data, "collections", "list", "--json")
    (collection,) = json.loads(out)
    assert (collection["tenant"], collection["documents"], collection["language"]) == (
        "acme",
        2,
        "pt",
    )
    _, out, _ = cli(data, "documents", "list", "--collection", "kb", "--tenant", "acme", "--json")
    first = json.loads(out)[0]
    cli(data, "documents", "delete", str(first["id"]), "--collection", "kb", "--tenant", "acme")
    _, out, _ = cli(data, "documents", "list", "--collection", "kb", "--tenant", "acme", "--json")
    assert [d["id"] for d in json.loads(out)] != [first["id"]] and len(json.loads(out)) == 1

    cli(data, "collections", "delete", "kb", "--tenant", "acme")
    assert json.loads(cli(data, "collections", "list", "--json")[1]) == []

    # Every change is in the audit log, as the HTTP routes record it, by the "cli" actor.
    _, out, _ = cli(data, "audit", "export", "--tenant", "acme")
    records = [json.loads(line) for line in out.splitlines()]
    events = [(r["event"], r["actor"], r["detail"].get("collection")) for r in records]
    assert events == [
        ("collection.created", "cli", "kb"),
        ("documents.ingested", "cli", "kb"),
        ("document.deleted", "cli", "kb"),
        ("collection.deleted", "cli", "kb"),
    ]
    assert records[1]["detail"]["files"] == [str(faq)] and records[1]["detail"]["added"] == 2
    assert records[2]["detail"]["document_id"] == first["id"]


def test_sql_source(data: Path, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, body TEXT, status TEXT, floor INTEGER)"
        )
        conn.executemany(
            "INSERT INTO tickets (body, status, floor) VALUES (?, ?, ?)",
            [
                ("A impressora do terceiro andar não imprime.", "open", 3),
                ("A impressora do primeiro andar está sem papel.", "done", 1),
            ],
        )
    conn.close()
    _, out, _ = cli(
        data,
        "ingest",
        "--collection",
        "kb",
        "--tenant",
        "acme",
        "--sql-url",
        f"sqlite:///{db}",
        "--sql-table",
        "tickets",
        "--text-field",
        "body",
        "--id-field",
        "id",
        "--metadata-field",
        "status",
        "--metadata-field",
        "floor",
        "--json",
    )
    assert json.loads(out)["added"] == 2
    _, out, _ = cli(
        data, "search", "impressora", "--collection", "kb", "--tenant", "acme", "--json"
    )
    hit = json.loads(out)[0]
    assert re.fullmatch(r"sql:tickets@[0-9a-f]{8}", hit["source"])
    assert hit["metadata"]["status"] in ("open", "done")
    # Numbers in metadata are numbers: --filter floor=3 matches the integer 3.
    search = ("search", "impressora", "--collection", "kb", "--tenant", "acme", "--json")
    _, out, _ = cli(data, *search, "--filter", "floor=3")
    assert [h["metadata"]["floor"] for h in json.loads(out)] == [3]
    _, out, _ = cli(data, *search, "--filter", "floor=3", "--filter", "status=done")
    assert json.loads(out) == []


def test_ingest_metadata_tags_documents_for_filters(data: Path, tmp_path: Path) -> None:
    contract = tmp_path / "contrato.txt"
    contract.write_text("O contrato de prestação de serviços vence em março.", encoding="utf-8")
    memo = tmp_path / "memo.md"
    memo.write_text("# Memo\n\nO contrato de aluguel do escritório vence em abril.\n")
    ingest = ("ingest", "--collection", "kb", "--tenant", "acme", "--json")
    _, out, _ = cli(
        data, *ingest, str(contract), "--metadata", "team=legal", "--metadata", "year=2025"
    )
    assert json.loads(out)["added"] == 1
    cli(data, *ingest, str(memo), "--metadata", "team=facilities")
    search = ("search", "contrato vence", "--collection", "kb", "--tenant", "acme", "--json")
    _, out, _ = cli(data, *search)
    assert len(json.loads(out)) == 2
    _, out, _ = cli(data, *search, "--filter", "team=legal")
    [hit] = json.loads(out)
    assert hit["source"] == str(contract)
    assert hit["metadata"] == {"team": "legal", "year": 2025}
    _, out, _ = cli(data, *search, "--filter", "year=2025", "--filter", "team=facilities")
    assert json.loads(out) == []


def test_filter_numbers_match_numbers_kept_as_text(data: Path, tmp_path: Path) -> None:
    # A CSV column holds text ("2024"); --filter year=2024 finds it as well as the number.
    table = tmp_path / "contratos.csv"
    table.write_text(
        "texto,year\nEl contrato de limpieza vence en marzo,2024\n"
        "El contrato de vigilancia vence en abril,2025\n",
        encoding="utf-8",
    )
    ingest = ("ingest", str(table), "--collection", "kb", "--tenant", "acme")
    cli(data, *ingest, "--text-field", "texto", "--metadata-field", "year", "--json")
    search = ("search", "contrato vence", "--collection", "kb", "--tenant", "acme", "--json")
    _, out, _ = cli(data, *search, "--filter", "year=2024")
    [hit] = json.loads(out)
    assert hit["metadata"]["year"] == "2024" and "limpieza" in hit["text"]
    # Operators through --where (text compares with text: "2025" >= "2025").
    _, out, _ = cli(data, *search, "--where", '{"year": {"$gte": "2025"}}')
    [hit] = json.loads(out)
    assert "vigilancia" in hit["text"]
    code, _, err = cli(data, *search, "--where", '{"year": {"$gte": ', check=False)
    assert code == 2 and err.startswith("error: --where is not valid JSON")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "x", "--collection", "nope"], 1, "No collection named 'nope'"),
        (["search", "x"], 2, "--collection is required"),
        (["search", "x", "--collection", "kb", "--mode", "fuzzy"], 2, "--mode must be"),
        (["collections", "create", "Bad Name"], 2, "invalid collection name"),
        (["collections", "create", "x", "--tenant", "Bad Name"], 2, "invalid tenant name"),
        (["collections", "create", "x", "--chunk-tokens", "0"], 2, "chunk_tokens must be"),
        (
            ["documents", "delete", "9" * 25, "--collection", "kb", "--tenant", "acme"],
            1,
            "number is too large",
        ),
        (
            [
                "ingest",
                "--collection",
                "kb",
                "--tenant",
                "acme",
                "--sql-url",
                "sqlite:///x.db",
                "--text-field",
                "q",
            ],
            2,
            "one of --sql-table or --sql-query",
        ),
        (["collections", "create", "x", "--chunk-tokens", "9" * 25], 2, "chunk_tokens must be"),
        (["documents", "list", "--collection", "kb", "--limit", "-1"], 2, "greater than or equal"),
        (["search", "x", "--collection", "kb", "--tenant", ""], 2, "invalid tenant name"),
        (["ingest", "/does/not/exist", "--collection", "kb", "--tenant", "acme"], 2, "not"),
        (
            ["ingest", ".", "--collection", "kb", "--tenant", "acme", "--metadata", "team"],
            2,
            "--metadata takes key=value",
        ),
        (
            ["ingest", ".", "--collection", "kb", "--tenant", "acme", "--metadata", "kind=x"],
            2,
            "metadata key 'kind' is reserved",
        ),
    ],
)
def test_errors_are_one_line(data: Path, args: list[str], code: int, message: str) -> None:
    returncode, _, err = cli(data, *args, check=False)
    assert returncode == code, err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_ask_with_citations(data: Path, tmp_path: Path) -> None:
    doc = tmp_path / "ferias.md"
    doc.write_text(
        "# Férias\n\nCada colaborador tem direito a 30 dias de férias por ano.\n", encoding="utf-8"
    )
    cli(data, "ingest", str(doc), "--collection", "kb", "--tenant", "acme")
    _, out, _ = cli(
        data,
        "ask",
        "Quantos dias de férias por ano?",
        "--collection",
        "kb",
        "--tenant",
        "acme",
        "--max-tokens",
        "24",
        "--json",
    )
    result = json.loads(out)
    assert result["answer"] and result["citations"][0]["source"] == str(doc)


def test_ingest_prune_mirrors_a_folder(data: Path, tmp_path: Path) -> None:
    """Ingesting a folder again with --prune deletes the documents of files removed from
    it; without --prune they stay, and a file outside the folder is never touched."""
    folder = tmp_path / "handbook"
    (folder / "sub").mkdir(parents=True)
    (folder / "vacaciones.md").write_text("# Vacaciones\n\nQuince días hábiles al año.\n")
    (folder / "sub" / "viajes.md").write_text("# Viajes\n\nReembolso en cinco días.\n")
    outside = tmp_path / "aparte.txt"
    outside.write_text("Documento fuera de la carpeta.\n")
    base = ["--collection", "kb", "--tenant", "acme", "--json"]
    cli(data, "ingest", str(folder), str(outside), *base)

    (folder / "sub" / "viajes.md").unlink()
    outside.unlink()
    report = json.loads(cli(data, "ingest", str(folder), *base)[1])
    assert report["removed"] == 0 and report["unchanged"] == 1

    code, out, err = cli(data, "ingest", str(folder), "--prune", *base)
    report = json.loads(out)
    assert code == 0 and report["removed"] == 1 and report["unchanged"] == 1
    _, out, _ = cli(data, "documents", "list", "--collection", "kb", "--tenant", "acme", "--json")
    sources = sorted(Path(d["source"]).name for d in json.loads(out))
    # The file outside the pruned folder keeps its document although it is gone too.
    assert sources == ["aparte.txt", "vacaciones.md"]
