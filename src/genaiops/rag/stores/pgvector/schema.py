"""The tables of the PostgreSQL + pgvector store, prefixed ``rag_`` so
they can share a database with the metadata store (``storage.url``).

Vectors live in one ``vector`` column without a fixed dimension, since collections use
different embedders; a collection past ``rag.hnsw_threshold`` chunks gets its own partial
HNSW index over ``embedding::vector(<dim>)`` (``rag_hnsw_<uid>``). BM25 runs over
``rag_terms``, one row per (collection, term, chunk) with the term frequency and the
chunk's length, and the per-collection totals kept in ``rag_collections``.
"""

from __future__ import annotations

# Taken (transaction-scoped) while the schema is created, so replicas starting together
# on an empty database do not race each other's CREATE statements.
SCHEMA_LOCK = 0x67656E6169_7261  # "genai" "ra"

# The version of the tables below, recorded in rag_schema: a database written by a newer
# genaiops (a higher version) is refused rather than written to.
SCHEMA_VERSION = 1
VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS rag_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS rag_collections (
    id BIGSERIAL PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    embedder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    chunk_tokens INTEGER NOT NULL,
    chunk_overlap INTEGER NOT NULL,
    language TEXT,
    description TEXT NOT NULL DEFAULT '',
    key_check TEXT,
    created_us BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    n_documents BIGINT NOT NULL DEFAULT 0,
    n_chunks BIGINT NOT NULL DEFAULT 0,
    -- Sum of the chunks' lengths in terms: BM25's average length is n_terms / n_chunks.
    n_terms BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant, name)
);
CREATE TABLE IF NOT EXISTS rag_documents (
    id BIGSERIAL PRIMARY KEY,
    collection_id BIGINT NOT NULL REFERENCES rag_collections(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    title BYTEA NOT NULL,
    kind TEXT NOT NULL,
    locator TEXT,
    content_hash TEXT NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    chunks INTEGER NOT NULL,
    updated_us BIGINT NOT NULL,
    UNIQUE (collection_id, key)
);
CREATE TABLE IF NOT EXISTS rag_chunks (
    id BIGSERIAL PRIMARY KEY,
    collection_id BIGINT NOT NULL,
    document_id BIGINT NOT NULL REFERENCES rag_documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    text BYTEA NOT NULL,
    heading BYTEA,
    page INTEGER,
    tokens INTEGER NOT NULL,
    n_terms INTEGER NOT NULL,
    text_hash TEXT NOT NULL,
    embedding vector NOT NULL
);
CREATE INDEX IF NOT EXISTS rag_chunks_document ON rag_chunks (document_id);
CREATE INDEX IF NOT EXISTS rag_chunks_hash ON rag_chunks (collection_id, text_hash);
CREATE TABLE IF NOT EXISTS rag_terms (
    collection_id BIGINT NOT NULL,
    term TEXT NOT NULL,
    chunk_id BIGINT NOT NULL REFERENCES rag_chunks(id) ON DELETE CASCADE,
    tf INTEGER NOT NULL,
    -- The chunk's length in terms, here so ranking never reads the (wide) chunk rows.
    dl INTEGER NOT NULL,
    -- tf and dl in the key's index too: ranking reads the index alone (once vacuumed).
    PRIMARY KEY (collection_id, term, chunk_id) INCLUDE (tf, dl)
);
CREATE INDEX IF NOT EXISTS rag_terms_chunk ON rag_terms (chunk_id);
-- Vectors stay in the row (uncompressed: floats do not compress) instead of the TOAST
-- table where PostgreSQL moves values over 2 kB by default: exact search reads every
-- vector of a collection, and fetching each from TOAST made it about 8 times slower.
DO $$ BEGIN
    IF (SELECT attstorage FROM pg_attribute
        WHERE attrelid = 'rag_chunks'::regclass AND attname = 'embedding') <> 'm' THEN
        ALTER TABLE rag_chunks ALTER COLUMN embedding SET STORAGE MAIN;
    END IF;
END $$;
"""
