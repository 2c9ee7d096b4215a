"""Stores for collections, documents, chunks and vectors."""
