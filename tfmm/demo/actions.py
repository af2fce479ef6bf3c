"""What each tab does, as plain functions of the models (`tfmm.demo.backends`): the page wires them to
widgets, and the tests call them directly as well as through the browser. Each returns values a widget
shows (text, {label: probability}, uint8 pictures) and raises `TfmmError` with a message for the page."""

import io
import threading

import numpy as np
from PIL import Image

from tfmm.demo.uploads import check_text, read_image_upload
from tfmm.errors import TfmmError
from tfmm.retrieval import EmbeddingIndex
from tfmm.visualization import attention_overlay

NO_WORDS = "(the model wrote no words for this image)"  # the caption box is never left blank after a request


def decode_image(data):
    """Encoded image bytes (an upload, a PNG the model returned) → uint8 (H, W, 3)."""
    with Image.open(io.BytesIO(bytes(data))) as image:
        return np.asarray(image.convert("RGB"))


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


class Actions:
    def __init__(self, models, examples):
        self.models, self.examples = models, examples
        self._index, self._lock = None, threading.Lock()

    # ------------------------------------------------------------------------------------------- search

    def index(self):
        """The example scenes and their captions, embedded once by the retrieval model."""
        with self._lock:
            if self._index is None:
                images = [read_image_upload(p) for p in self.examples.scene_images]
                image_embeddings = self.models.call("retrieval", "embed_image", image_bytes=images)["embedding"]
                captions = list(dict.fromkeys(self.examples.scene_captions))
                text_embeddings = self.models.call("retrieval", "embed_text", text=captions)["embedding"]
                index = EmbeddingIndex(image_embeddings.shape[-1])
                index.add_images(self.examples.scene_images, _unit(image_embeddings), [0.0] * len(images))
                index.add_texts(captions, _unit(text_embeddings))
                self._index = index
            return self._index

    def search_images(self, query, top_k=5):
        """Text → the `top_k` example images closest to it: [(image path, "cosine 0.83")]."""
        query = check_text(query, "search text")
        embedding = self.models.call("retrieval", "embed_text", text=[query])["embedding"][0]
        return [(path, f"{score:.2f}") for path, score in self.index().search(_unit(embedding), "images", top_k)]

    def search_captions(self, image_path, top_k=5):
        """Image → the `top_k` closest captions: {caption: cosine}."""
        image = read_image_upload(image_path)
        embedding = self.models.call("retrieval", "embed_image", image_bytes=[image])["embedding"][0]
        return dict(self.index().search(_unit(embedding), "texts", top_k))

    def zero_shot(self, image_path, class_names):
        """Image + comma-separated class names → {class: probability}."""
        image = read_image_upload(image_path)
        names = [n.strip() for n in check_text(class_names, "list of class names").split(",") if n.strip()]
        if len(names) < 2:
            raise TfmmError("give at least two class names, separated by commas")
        out = self.models.call("retrieval", "zero_shot", image_bytes=[image], class_names=names)
        return {name: float(p) for name, p in zip(names, out["probabilities"][0])}

    # ---------------------------------------------------------------------------------------------- VQA

    def answer(self, image_path, question):
        """Image + question → (answer, {answer: probability} of the top 5, attention picture or None)."""
        image = read_image_upload(image_path)
        question = check_text(question, "question")
        out = self.models.call("vqa", "answer", image_bytes=[image], question=[question])
        top = {_text(a): float(p) for a, p in zip(out["top_answers"][0], out["top_probabilities"][0])}
        overlay = attention_overlay(decode_image(image), out["attention"][0]) if "attention" in out else None
        return _text(out["answer"][0]), top, overlay

    # ------------------------------------------------------------------------------------------ caption

    def caption(self, image_path, beam_width=1):
        """Image → (caption, [(attention picture, word)] for each word written)."""
        image = read_image_upload(image_path)
        out = self.models.call("caption", "caption_attention", image_bytes=[image], beam_width=int(beam_width))
        pixels = decode_image(image)
        strip = [(attention_overlay(pixels, weights, size=128), _text(word))
                 for word, weights in zip(out["words"][0], out["attention"][0]) if _text(word)]
        return _text(out["caption"][0]) or NO_WORDS, strip

    # ----------------------------------------------------------------------------------------- classify

    def classify(self, image_path, text):
        """Image + text → {task: {label: probability}} (the best five per task)."""
        image = read_image_upload(image_path)
        text = check_text(text, "text")
        out = self.models.call("classify", "classify", image_bytes=[image], text=[text])
        tasks = sorted(name[: -len("_top_labels")] for name in out if name.endswith("_top_labels"))
        return {task: {_text(label): float(p) for label, p in zip(out[f"{task}_top_labels"][0],
                                                                   out[f"{task}_top_probabilities"][0])}
                for task in tasks}

    # ----------------------------------------------------------------------------------------- generate

    def generate(self, prompt, count=4, seed=0, temperature=1.0, top_k=0, guidance_scale=3.0):
        """Prompt → `count` samples (uint8 pictures) and a note when the prompt has no known word."""
        prompt = check_text(prompt, "prompt")
        if not 1 <= int(count) <= 16:
            raise TfmmError(f"samples must be between 1 and 16, got {count}")
        out = self.models.call("generate", "generate_guided", prompt=[prompt] * int(count), seed=int(seed),
                               temperature=float(temperature), top_k=int(top_k), guidance_scale=float(guidance_scale))
        note = "" if out["known_words"][0] else "the model knows no word of this prompt: the samples follow no text"
        return [decode_image(png) for png in out["png"]], note

    def edit(self, image_path, prompt, box, seed=0, temperature=1.0, top_k=0, guidance_scale=3.0):
        """Image + box (x0, y0, x1, y1 in the model's pixels) + prompt → the edited picture."""
        image = read_image_upload(image_path)
        prompt = check_text(prompt, "prompt")
        out = self.models.call("generate", "edit", image_bytes=[image], box=[int(v) for v in box], prompt=[prompt],
                               seed=int(seed), temperature=float(temperature), top_k=int(top_k),
                               guidance_scale=float(guidance_scale))
        return decode_image(out["png"][0])


def _unit(vectors):
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
