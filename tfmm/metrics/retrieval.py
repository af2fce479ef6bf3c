"""Retrieval metrics over a whole split (not per batch), with scene-aware hits."""

import numpy as np


def _top_k(similarity, k):
    k = min(k, similarity.shape[1])
    part = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    return part


def recall_at_k(image_embeddings, text_embeddings, image_scenes, text_scenes, ks=(1, 5, 10)):
    """Recall@k both ways. A retrieved item is a hit when it shows the query's scene.

    text→image: for each caption, is an image of its scene among the k most similar
    images? image→text: for each image, is a caption of its scene among the k most
    similar captions? Two images with the same scene content count for each other.
    """
    image_scenes = np.asarray(image_scenes)
    text_scenes = np.asarray(text_scenes)
    similarity = np.asarray(text_embeddings, np.float32) @ np.asarray(image_embeddings, np.float32).T
    metrics = {}
    for k in ks:
        top = _top_k(similarity, k)
        metrics[f"text_to_image_recall@{k}"] = float(np.mean(np.any(image_scenes[top] == text_scenes[:, None], axis=1)))
        top = _top_k(similarity.T, k)
        metrics[f"image_to_text_recall@{k}"] = float(np.mean(np.any(text_scenes[top] == image_scenes[:, None], axis=1)))
    return metrics


def zero_shot_accuracy(image_embeddings, class_embeddings, labels, ks=(1, 5)):
    """Top-k accuracy of nearest-class-embedding classification."""
    logits = np.asarray(image_embeddings) @ np.asarray(class_embeddings).T
    labels = np.asarray(labels)
    return {f"top{k}_accuracy": float(np.mean(np.any(_top_k(logits, k) == labels[:, None], axis=1))) for k in ks}
