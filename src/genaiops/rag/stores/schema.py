"""The tables of the embedded store (stores/sqlite.py). Each collection also has an FTS5
table, ``fts_<id>``, created with it."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    embedder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    chunk_tokens INTEGER NOT NULL,
    chunk_overlap INTEGER NOT NULL,
    language TEXT,
    description TEXT NOT NULL DEFAULT '',
    key_check TEXT,
    created_us INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    -- Unique to this collection: a row id is reused after the newest collection is
    -- deleted, so derived indexes are named by uid, never by id.
    uid TEXT,
    UNIQUE (tenant, name)
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    title BLOB NOT NULL,
    kind TEXT NOT NULL,
    locator TEXT,
    content_hash TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    chunks INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (collection_id, key)
);
-- AUTOINCREMENT: ids are never reused, so an id held by a derived index or a citation
-- always means the same chunk.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    text BLOB NOT NULL,
    heading BLOB,
    page INTEGER,
    tokens INTEGER NOT NULL,
    text_hash TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_chunks_document ON chunks (document_id);
CREATE INDEX IF NOT EXISTS ix_chunks_hash ON chunks (collection_id, text_hash);
"""
