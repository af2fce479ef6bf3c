"""Text-to-image quality: reconstruction of the image tokenizer, and prompt fidelity judged by a separately
trained scene reader (`SceneAttributeClassifier`): a generated image counts only when it shows every
object its prompt asks for, with the right colour and shape, in order."""

import time

import numpy as np

from tfmm.errors import TfmmError
from tfmm.models.scene_attribute_classifier import MAX_OBJECTS


def reconstruction_metrics(model, dataset, batch_size=128):
    """Mean PSNR per image, MSE, and codebook usage / perplexity of `model` (anything with raw-input
    `encode` / `decode` and a codebook: a `VQVAE` or a `TextToImageGenerator`) over `dataset`'s images."""
    num_codes = getattr(model, "vqvae", model.backbone).num_codes
    psnr, mse, counts = [], [], np.zeros(num_codes)
    for batch in dataset.map(lambda e: e["image"]).batch(batch_size).prefetch(2).as_numpy_iterator():
        tokens = model.encode(batch)
        errors = np.mean((model.decode(tokens).astype(np.float32) / 255 - batch.astype(np.float32) / 255) ** 2, axis=(1, 2, 3))
        mse.extend(errors)
        psnr.extend(-10 * np.log10(np.maximum(errors, 1e-10)))
        counts += np.bincount(tokens.reshape(-1), minlength=num_codes)
    if not psnr:
        raise TfmmError("no image to reconstruct")
    share = counts / counts.sum()
    entropy = -(share[share > 0] * np.log(share[share > 0])).sum()
    return {"psnr": float(np.mean(psnr)), "mse": float(np.mean(mse)), "codebook_usage": float((counts > 0).mean()),
            "perplexity": float(np.exp(entropy)), "images": len(psnr)}


def scene_labels(objects, colours, shapes):
    """Judge labels of a scene's objects ("colour shape|…", left to right): count and per-slot classes
    (class 0 = no object in that slot)."""
    things = [o.split() for o in objects.split("|") if o]
    if not 1 <= len(things) <= MAX_OBJECTS:
        raise TfmmError(f"a scene has 1 to {MAX_OBJECTS} objects, got {objects!r}")
    labels = {"count": len(things) - 1}
    for slot in range(MAX_OBJECTS):
        colour, shape = things[slot] if slot < len(things) else (None, None)
        labels[f"colour{slot}"] = colours.index(colour) + 1 if colour else 0
        labels[f"shape{slot}"] = shapes.index(shape) + 1 if shape else 0
    return labels


def judge_scenes(judge, images, objects, colours, shapes):
    """Share of `images` whose objects all read as `objects` ("colour shape|…" each) to `judge` (anything
    with `read(images) -> {head: class ids}`), and the per-image verdicts."""
    read = judge.read(images)
    right = []
    for i, truth in enumerate(objects):
        labels = scene_labels(truth, colours, shapes)
        right.append(all(int(read[head][i]) == value for head, value in labels.items()))
    return float(np.mean(right)), right


def evaluate_generator(generator, prompt_sets, judge=None, words=None, seed=0, sampling=None, retrieval=None,
                       guidance_scale=None):
    """Prompt fidelity per prompt set ({name: (prompts, objects, real uint8 images)}), with the judge's own
    accuracy on the real images of the same prompts beside it (how far the measure can be trusted) and, for a
    generator with an image tokenizer (`encode` / `decode`), on their reconstructions (the ceiling of its fidelity:
    a token grid can draw no better than the tokenizer rebuilds a real image); with a retrieval task, the mean
    image–text cosine of the samples and of the real images to their prompts."""
    metrics = {}
    for name, (prompts, objects, real) in prompt_sets.items():
        started = time.perf_counter()
        images = generator.generate(prompts, seed=seed, sampling=sampling, guidance_scale=guidance_scale)
        metrics[f"{name}_seconds_per_image"] = (time.perf_counter() - started) / len(prompts)
        if judge is not None:
            metrics[f"{name}_prompt_fidelity"], _ = judge_scenes(judge, images, objects, *words)
            metrics[f"{name}_judge_accuracy_on_real_images"], _ = judge_scenes(judge, real, objects, *words)
            if hasattr(generator, "encode"):  # a token model: the most its tokenizer lets it draw right
                rebuilt = generator.decode(generator.encode(real))
                metrics[f"{name}_judge_accuracy_on_reconstructions"], _ = judge_scenes(judge, rebuilt, objects, *words)
        if retrieval is not None:
            texts = retrieval.embed_texts(prompts)
            for kind, pictures in (("samples", images), ("real_images", real)):
                metrics[f"{name}_retrieval_similarity_{kind}"] = float(np.mean(np.sum(retrieval.embed_images(pictures) * texts, -1)))
        metrics[f"{name}_prompts"] = len(prompts)
    metrics["examples"] = sum(len(prompts) for prompts, _, _ in prompt_sets.values())
    return metrics


def sample_diversity(generator, prompts, samples=8, seed=0, sampling=None, guidance_scale=None):
    """How much the images of one prompt differ ({"distinct_share", "pairwise_pixel_difference"}): over `prompts`,
    `samples` images each, the mean share of distinct images and the mean absolute pixel difference (0..1) between
    two images of the same prompt. Fidelity bought by collapse shows here as values near 0."""
    images = generator.generate([p for p in prompts for _ in range(samples)], seed=seed, sampling=sampling,
                                guidance_scale=guidance_scale)
    images = images.reshape(len(prompts), samples, -1).astype(np.float32) / 255
    distinct, difference = [], []
    for group in images:
        distinct.append(len({row.tobytes() for row in group}) / samples)
        pairs = [(i, j) for i in range(samples) for j in range(i + 1, samples)]
        difference.append(np.mean([np.abs(group[i] - group[j]).mean() for i, j in pairs]))
    return {"distinct_share": float(np.mean(distinct)), "pairwise_pixel_difference": float(np.mean(difference))}
