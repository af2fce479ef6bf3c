"""Caption quality: the COCO caption metrics (pycocoevalcap, the reference implementation) and a
direct check that a caption names every object of the image with the right colour and shape.

BLEU-1…4, ROUGE-L and CIDEr-D (pycocoevalcap's `Cider` is CIDEr-D: clipped counts, Gaussian
length penalty, σ = 6) always; METEOR when Java is present (it runs the METEOR jar). Captions are
tokenised with the Stanford PTB tokenizer as the COCO evaluation does when Java is present, else
with the same lower-casing and punctuation removal in Python.
"""

import collections
import re
import shutil
import time

from tfmm.errors import TfmmError

PUNCTUATION = re.compile(r"[^\w\s]")


def java_available():
    return shutil.which("java") is not None


def _tokenize(captions_by_id):
    if java_available():
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({key: [{"caption": c} for c in captions] for key, captions in captions_by_id.items()})
    return {key: [" ".join(PUNCTUATION.sub(" ", c.lower()).split()) for c in captions]
            for key, captions in captions_by_id.items()}


def caption_metrics(references, hypotheses):
    """`references` {image id: [captions]} (all references of each image), `hypotheses` {image id: caption}
    → {"bleu_1".."bleu_4", "meteor" (with Java), "rouge_l", "cider_d"} over the whole set."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if set(references) != set(hypotheses):
        raise TfmmError("every evaluated image needs both references and a generated caption")
    if not hypotheses:
        raise TfmmError("no captions to evaluate")
    keys = sorted(references)
    gts = _tokenize({k: references[k] for k in keys})
    res = _tokenize({k: [hypotheses[k] or ""] for k in keys})
    # pycocoevalcap cannot score an empty hypothesis (BLEU/METEOR choke on it): a placeholder scores zero.
    res = {k: [c if c.strip() else "<empty>"] for k, (c,) in res.items()}
    metrics = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    metrics.update({f"bleu_{n}": float(score) for n, score in enumerate(bleu, 1)})
    if java_available():
        from pycocoevalcap.meteor.meteor import Meteor

        metrics["meteor"] = float(Meteor().compute_score(gts, res)[0])  # the jar process ends with the object
    metrics["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    metrics["cider_d"] = float(Cider().compute_score(gts, res)[0])
    return metrics


def named_objects(caption, colours, shapes):
    """The "colour shape" pairs a caption names (a colour word followed by a shape word, a size word
    such as "large" may sit between), sorted."""
    pattern = re.compile(rf"\b({'|'.join(colours)})\s+(?:\w+\s+)?({'|'.join(shapes)})s?\b")
    return sorted(f"{c} {s}" for c, s in pattern.findall(caption.lower()))


def names_every_object(caption, objects, colours, shapes):
    """True when the caption names exactly the image's objects ("colour shape|…"), each with the right
    colour and shape: no object missing, none wrong, none invented."""
    return named_objects(caption, colours, shapes) == sorted(o for o in objects.split("|") if o)


def object_correctness(captions, objects, colours, shapes):
    """Share of captions that name every object right, and the most frequent mistakes."""
    mistakes = collections.Counter()
    correct = 0
    for caption, truth in zip(captions, objects):
        if names_every_object(caption, truth, colours, shapes):
            correct += 1
        else:
            named = collections.Counter(named_objects(caption, colours, shapes))
            wanted = collections.Counter(o for o in truth.split("|") if o)
            missing, invented = sorted((wanted - named).elements()), sorted((named - wanted).elements())
            mistakes[f"{'+'.join(missing) or '-'} → {'+'.join(invented) or '-'}"] += 1
    return correct / max(len(captions), 1), mistakes


def evaluate_captions(task, dataset, object_words=None, beam_width=1, sampling=None, length_penalty=None,
                      max_length=None, batch_size=64):
    """Captions every image of `dataset` (`{"image", "captions", "objects"}`) and scores them against all
    its references: BLEU-1…4, METEOR (with Java), ROUGE-L, CIDEr-D, and — with `object_words`
    (colours, shapes) and known objects — the share of captions naming every object right. Also
    captions per second and three examples."""
    references, hypotheses, objects, seconds = {}, {}, [], 0.0
    for batch in dataset.ragged_batch(batch_size).prefetch(2):
        started = time.perf_counter()
        captions = task.caption_details(batch["image"].numpy(), beam_width, length_penalty, max_length,
                                        sampling)["captions"]
        seconds += time.perf_counter() - started
        for refs, beams, truth in zip(batch["captions"].to_list(), captions, batch["objects"].numpy()):
            key = len(references)
            references[key] = [r.decode() for r in refs]
            hypotheses[key] = beams[0][0]
            objects.append(truth.decode())
    if not references:
        raise TfmmError("no image to evaluate")
    metrics = caption_metrics(references, hypotheses)
    if object_words and all(objects):
        share, mistakes = object_correctness([hypotheses[k] for k in sorted(hypotheses)], objects, *object_words)
        metrics["object_correctness"] = share
        metrics["top_object_mistakes"] = ", ".join(f"{m} ×{n}" for m, n in mistakes.most_common(3)) or "none"
    metrics["images"] = metrics["examples"] = len(references)
    metrics["captions_per_second"] = len(references) / seconds
    metrics["samples"] = [{"caption": hypotheses[k], "references": references[k][:2]} for k in range(min(3, len(references)))]
    return metrics
