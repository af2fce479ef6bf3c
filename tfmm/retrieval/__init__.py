"""Search over embeddings: `EmbeddingIndex` (images by path, captions by text), saved as one `.npz`."""

from tfmm.retrieval.embedding_index import EmbeddingIndex

__all__ = ["EmbeddingIndex"]
