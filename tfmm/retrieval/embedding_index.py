from pathlib import Path

import numpy as np

from tfmm.errors import TfmmError
from tfmm.files import atomic_write


class EmbeddingIndex:
    """Unit embeddings of images (keyed by file path, with the file's modification time so a changed file
    is embedded again) and of captions, searched by cosine similarity.

        index = EmbeddingIndex.load("photos.npz") if Path("photos.npz").exists() else EmbeddingIndex(dim)
        index.add_images(paths, embeddings, mtimes); index.add_texts(captions, embeddings)
        index.search(query_embedding, "images", top_k=5)  # → [(path, score), ...]
        index.save("photos.npz")                          # atomically
    """

    def __init__(self, dim):
        self.dim = dim
        self.image_paths, self.image_mtimes = np.array([], dtype=str), np.zeros(0)
        self.image_embeddings = np.zeros((0, dim), np.float32)
        self.texts, self.text_embeddings = np.array([], dtype=str), np.zeros((0, dim), np.float32)

    def _check(self, embeddings, count):
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, self.dim) if len(embeddings) else np.zeros((0, self.dim), np.float32)
        if embeddings.shape != (count, self.dim):
            raise TfmmError(f"the index holds {self.dim}-d embeddings; got {embeddings.shape} for {count} item(s)")
        return embeddings

    def stale_images(self, paths, mtimes):
        """The paths (of `paths`) that are new or changed since they were indexed."""
        known = dict(zip(self.image_paths.tolist(), self.image_mtimes.tolist()))
        return [p for p, m in zip(paths, mtimes) if known.get(str(p)) != m]

    def add_images(self, paths, embeddings, mtimes):
        """Adds (or replaces, for a path already indexed) image embeddings."""
        paths = [str(p) for p in paths]
        embeddings = self._check(embeddings, len(paths))
        keep = ~np.isin(self.image_paths, paths)
        self.image_paths = np.concatenate([self.image_paths[keep], paths])
        self.image_mtimes = np.concatenate([self.image_mtimes[keep], np.asarray(mtimes, float)])
        self.image_embeddings = np.concatenate([self.image_embeddings[keep], embeddings])

    def add_texts(self, texts, embeddings):
        """Adds captions not indexed yet (duplicates and known ones are skipped); returns how many were new."""
        embeddings = self._check(embeddings, len(texts))
        known, new = set(self.texts.tolist()), []
        for index, text in enumerate(texts):
            if text not in known:
                known.add(text)
                new.append(index)
        self.texts = np.concatenate([self.texts, [texts[i] for i in new]])
        self.text_embeddings = np.concatenate([self.text_embeddings, embeddings[new]])
        return len(new)

    def search(self, query, among, top_k=5):
        """The `top_k` items of `among` ("images" or "texts") most similar to the unit `query` (d,),
        best first, as (item, cosine) pairs."""
        if top_k < 1:
            raise TfmmError(f"top_k must be at least 1, got {top_k}")
        if among not in ("images", "texts"):
            raise TfmmError(f"search among 'images' or 'texts', not {among!r}")
        items, keys = (self.image_paths, self.image_embeddings) if among == "images" else (self.texts, self.text_embeddings)
        if not len(items):
            raise TfmmError(f"the index holds no {among}")
        scores = keys @ np.asarray(query, np.float32).reshape(self.dim)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [(str(items[i]), float(scores[i])) for i in order]

    def save(self, path):
        with atomic_write(path) as tmp, open(tmp, "wb") as handle:  # a file object: savez adds no ".npz"
            np.savez(handle, image_paths=self.image_paths, image_mtimes=self.image_mtimes,
                     image_embeddings=self.image_embeddings, texts=self.texts, text_embeddings=self.text_embeddings)

    @classmethod
    def load(cls, path):
        path = Path(path)
        if not path.is_file():
            raise TfmmError(f"index not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                index = cls(data["image_embeddings"].shape[1])
                for key in ("image_paths", "image_mtimes", "image_embeddings", "texts", "text_embeddings"):
                    setattr(index, key, data[key])
        except (KeyError, ValueError, OSError) as error:
            raise TfmmError(f"{path} is not an embedding index: {error}") from None
        return index
