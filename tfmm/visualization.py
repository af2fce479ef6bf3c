"""Pictures a person looks at: training curves, attention over images, caption attention per word,
sample grids. One module, so every app draws the same way; matplotlib runs headless (Agg)."""

import math

import numpy as np
from PIL import Image


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path, dpi=100):
    plt = _pyplot()
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def _as_float(image):
    image = np.asarray(image)
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else np.clip(image, 0, 1)


def plot_history(history, path):
    """Training curves ({metric: values per epoch}) as a PNG: every loss."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for key, values in history.items():
        if key.endswith("loss"):
            axis.plot(range(1, len(values) + 1), values, label=key)
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.legend()
    return _save(figure, path)


def _overlay(axis, image, weights):
    axis.imshow(attention_overlay(image, weights))
    axis.axis("off")


def plot_attention(images, maps, title, path):
    """One panel per (image, attention over its region grid): a question's attention over an image,
    or over each frame a clip model's frame heads picked."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(maps), figsize=(4 * len(maps), 4.4), squeeze=False)
    for axis, image, weights in zip(axes[0], images, maps):
        _overlay(axis, image, np.asarray(weights))
    figure.suptitle(title)
    return _save(figure, path)


def plot_caption(image, words, maps, caption, path):
    """The image, then one panel per generated word with that word's attention over the image."""
    plt = _pyplot()
    columns = 6
    rows = math.ceil((len(words) + 1) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    axes.flat[0].imshow(_as_float(image))
    axes.flat[0].set_title("input", fontsize=9)
    for axis, word, weights in zip(axes.flat[1:], words, maps):
        _overlay(axis, image, np.asarray(weights))
        axis.set_title(word, fontsize=10)
    figure.suptitle(caption, fontsize=11)
    return _save(figure, path, dpi=90)


def image_grid(images, rows, path, titles=None):
    """Images in a grid (row by row) with a title at the start of each row (a prompt, a query)."""
    plt = _pyplot()
    columns = math.ceil(len(images) / rows)
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns + 2.5, 1.7 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, image in enumerate(images):
        axes.flat[index].imshow(_as_float(image))
    for row, title in enumerate(titles or []):
        axes[row, 0].set_title(title, fontsize=8, loc="left")
    return _save(figure, path)


def plot_probabilities(groups, title, path, image=None):
    """Horizontal bars of class probabilities, most likely on top: one panel per group ({name: (labels,
    probabilities)}: a classifier's tasks, a zero-shot list), after the input `image` when given."""
    plt = _pyplot()
    panels = len(groups) + (image is not None)
    height = max([1.5] + [0.32 * min(len(labels), 10) + 1.0 for labels, _ in groups.values()])
    figure, axes = plt.subplots(1, panels, figsize=(4.2 * panels, height), squeeze=False)
    axes = list(axes[0])
    if image is not None:
        axes[0].imshow(_as_float(image))
        axes[0].axis("off")
        axes = axes[1:]
    for axis, (name, (labels, probabilities)) in zip(axes, groups.items()):
        order = np.argsort(probabilities)[::-1][:10]
        axis.barh([labels[i] for i in order][::-1], [float(probabilities[i]) for i in order][::-1], color="#4477aa")
        axis.set_xlim(0, 1)
        axis.set_title(name, fontsize=10)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def save_png(image, path):
    """One uint8 (or 0..1 float) image as a PNG file."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(image).save(path)
    return path


def attention_overlay(image, weights, size=256, alpha=0.55):
    """An image (uint8 (H, W, 3), or 0..1 floats) with attention over its square region grid (`weights`, g·g
    values) laid on top as a heat map: a uint8 (size, size, 3) picture, for a figure panel or a page."""
    import matplotlib

    weights = np.asarray(weights, np.float32).reshape(-1)
    side = int(round(math.sqrt(weights.size)))
    if side * side != weights.size:
        raise ValueError(f"attention over {weights.size} regions is not a square grid")
    span = weights.max() - weights.min()
    if not weights.any():  # no attention recorded: the plain image
        alpha = 0.0
    weights = (weights - weights.min()) / span if span > 0 else np.zeros_like(weights)
    grid = Image.fromarray((weights.reshape(side, side) * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    heat = matplotlib.colormaps["inferno"](np.asarray(grid) / 255.0)[..., :3]
    pixels = (_as_float(image) * 255).round().astype(np.uint8)
    base = np.asarray(Image.fromarray(pixels).convert("RGB").resize((size, size), Image.BILINEAR))
    blend = np.clip((1 - alpha) * base / 255.0 + alpha * heat, 0, 1)
    return (blend * 255).round().astype(np.uint8)


def mask_overlay(image, mask, colour=(255, 40, 40), alpha=0.5):
    """An image (uint8 (H, W, 3)) with a 0/1 mask of its size laid on top in `colour`: a uint8 picture."""
    image = np.asarray(image, np.float32)
    marked = np.asarray(mask, bool)[..., None]
    tinted = image * (1 - alpha) + np.array(colour, np.float32) * alpha
    return np.where(marked, tinted, image).round().astype(np.uint8)
