import numpy as np

from tfmm.evaluation import recall_at_k, zero_shot_accuracy


def test_recall_counts_images_of_the_same_scene_as_hits():
    images = np.eye(3, dtype="float32")
    # Caption 0 is closest to image 1, which shows the same scene as image 0: a hit at k=1.
    texts = np.array([[0, 1, 0], [0, 0.9, 0.1], [0.6, 0, 0.8]], "float32")
    metrics = recall_at_k(images, texts, ["s", "s", "t"], ["s", "s", "t"], ks=(1,))
    assert metrics["text_to_image_recall@1"] == 1.0
    metrics = recall_at_k(images, texts, ["a", "b", "c"], ["a", "b", "c"], ks=(1, 3))
    assert metrics["text_to_image_recall@1"] == 2 / 3
    assert metrics["text_to_image_recall@3"] == 1.0
    # Image 0's nearest caption is caption 2 ("c"), image 1's is caption 0 ("a"): only image 2 hits.
    assert metrics["image_to_text_recall@1"] == 1 / 3


def test_zero_shot_accuracy():
    classes = np.eye(3, dtype="float32")
    images = np.array([[1, 0, 0], [0, 0.9, 0.1], [0, 0.6, 0.4]], "float32")
    metrics = zero_shot_accuracy(images, classes, [0, 1, 2], ks=(1, 2))
    assert metrics == {"top1_accuracy": 2 / 3, "top2_accuracy": 1.0}
