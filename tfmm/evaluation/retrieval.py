"""Retrieval metrics over a whole split (not per batch), with scene-aware hits, and zero-shot accuracy."""

import numpy as np

from tfmm.errors import TfmmError


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


def split_arrays(dataset):
    """Images, scenes, labels and (caption, scene) pairs of a whole split of captioned images, in memory."""
    images, scenes, labels, captions, caption_scenes = [], [], [], [], []
    for example in dataset.as_numpy_iterator():
        images.append(example["image"])
        scene = example["scene"].decode()
        scenes.append(scene)
        labels.append(example.get("label", -1))
        for caption in example["captions"]:
            captions.append(caption.decode())
            caption_scenes.append(scene)
    if not images:
        raise TfmmError("the split is empty")
    return np.stack(images), np.array(scenes), np.array(labels), captions, np.array(caption_scenes)


def evaluate_retrieval(task, dataset):
    """Recall@1/5/10 both ways over every image and caption of `dataset` (captioned images), where two
    images with the same scene count for each other."""
    images, scenes, _, captions, caption_scenes = split_arrays(dataset)
    metrics = recall_at_k(task.embed_images(images), task.embed_texts(captions), scenes, caption_scenes)
    metrics.update(images=len(images), captions=len(captions), examples=len(images))
    return metrics


def evaluate_zero_shot(task, dataset, class_names, label_names, templates=None, subset=None):
    """Zero-shot top-1/top-5 accuracy on the images of `dataset` whose class (`label` indexes
    `label_names`) is among `class_names`; with `subset` (class names), also the top-1 accuracy of the
    same images classified among those classes only (`subset_top1_accuracy`)."""
    images, _, labels, _, _ = split_arrays(dataset)
    if (labels < 0).any():
        raise TfmmError("this split has no class labels; zero-shot needs them (the shapes dataset has them)")
    names = [label_names[label] for label in labels]
    keep = [i for i, name in enumerate(names) if name in class_names]
    if not keep:
        raise TfmmError(f"no image of this split shows one of the classes {list(class_names)[:5]}…")
    class_embeddings = task.class_embeddings(class_names, templates)
    image_embeddings = task.embed_images(images[keep])
    targets = [class_names.index(names[i]) for i in keep]
    metrics = zero_shot_accuracy(image_embeddings, class_embeddings, targets)
    if subset:
        inside = [j for j, i in enumerate(keep) if names[i] in subset]
        columns = [class_names.index(name) for name in subset]
        relabelled = [subset.index(names[keep[j]]) for j in inside]
        metrics["subset_top1_accuracy"] = zero_shot_accuracy(image_embeddings[inside], class_embeddings[columns],
                                                             relabelled, ks=(1,))["top1_accuracy"]
        metrics["subset_images"] = len(inside)
    metrics.update(images=len(keep), classes=len(class_names))
    return metrics
