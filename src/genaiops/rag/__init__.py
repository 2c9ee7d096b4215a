"""Retrieval-augmented generation: loaders, chunking, embedders, stores, hybrid search,
grounded answers with citations."""
