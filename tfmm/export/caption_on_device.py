"""Captions from the exported TFLite models on a device: NumPy and the LiteRT interpreter only.

The export's `tflite/` folder holds `caption_encoder_<q>.tflite` (image → the decoder's initial
state), `caption_step_<q>.tflite` (one token + state → next-token logits + state), this file,
`vocabulary.txt` and `caption_decoding.json` (token ids, image size, longest caption). The loop
below runs greedy decoding or beam search one step at a time over the step model; it is
self-contained (copied into every export) so an app on the device can use it as it is:

    python caption_on_device.py image.png [--beam-width 3] [--quantization float32]
"""

import json
import re
from pathlib import Path

import numpy as np


def _interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # older installs ship the interpreter as tflite_runtime
        from tflite_runtime.interpreter import Interpreter
    return Interpreter(model_path=str(path))


def _log_softmax(logits):
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


class OnDeviceCaptioner:
    def __init__(self, folder, quantization="float32"):
        folder = Path(folder)
        self.settings = json.loads((folder / "caption_decoding.json").read_text())
        self.vocabulary = (folder / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
        self.encoder = _interpreter(folder / f"caption_encoder_{quantization}.tflite").get_signature_runner()
        self.step_runner = _interpreter(folder / f"caption_step_{quantization}.tflite").get_signature_runner()
        self.step_inputs = self.step_runner.get_input_details()

    @property
    def image_size(self):
        return self.settings["image_size"]

    def _step(self, token, state, index):
        feed = {"token_ids": np.array([token], np.int32), "index": np.array(index, np.int32), **state}
        out = self.step_runner(**{name: value for name, value in feed.items() if name in self.step_inputs})
        return out.pop("logits")[0].astype(np.float64), out

    def detokenize(self, token_ids):
        special = {self.vocabulary.index(t) for t in ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]") if t in self.vocabulary}
        words = []
        for token in token_ids:
            if token == self.settings["end_id"]:
                break
            if token not in special:
                words.append(self.vocabulary[token])
        return re.sub(r" ([,.;:!?])", r"\1", " ".join(words).replace(" ##", ""))

    def caption(self, image, beam_width=1, max_length=None, length_penalty=None):
        """One float image (S, S, 3) in 0..1 → [(caption, score), ...] best first (one entry for greedy)."""
        s = self.settings
        max_length = max_length or s["max_length"]
        alpha = s["length_penalty"] if length_penalty is None else length_penalty
        if not 1 <= beam_width <= s["max_beam_width"]:
            raise ValueError(f"beam_width must be between 1 and {s['max_beam_width']}, got {beam_width}")
        state = self.encoder(images=np.asarray(image, np.float32)[None])
        never = [s["pad_id"], s["start_id"]]  # as the Keras model: a caption never emits [PAD] or [CLS]
        # A beam: (log-probability, tokens, state, finished).
        beams = [(0.0, [], state, False)]
        for index in range(max_length):
            candidates = []
            for log_probability, tokens, state, finished in beams:
                if finished:
                    candidates.append((log_probability, tokens, state, True))
                    continue
                logits, new_state = self._step(tokens[-1] if tokens else s["start_id"], state, index)
                logits[never] = -1e9
                step = _log_softmax(logits)
                for token in np.argsort(-step, kind="stable")[:beam_width]:
                    candidates.append((log_probability + step[token], tokens + [int(token)], new_state,
                                       int(token) == s["end_id"]))
            score = lambda beam: beam[0] / ((5.0 + len(beam[1])) / 6.0) ** alpha  # noqa: E731  (GNMT length penalty)
            beams = sorted(candidates, key=score, reverse=True)[:beam_width]
            if all(beam[3] for beam in beams):
                break
        return [(self.detokenize(tokens), float(score(beam))) for beam in beams for tokens in [beam[1]]]


def _load_image(path, size):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255.0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--beam-width", type=int, default=1)
    parser.add_argument("--quantization", default="float32")
    args = parser.parse_args()
    captioner = OnDeviceCaptioner(Path(__file__).parent, args.quantization)
    for path in args.images:
        caption, score = captioner.caption(_load_image(path, captioner.image_size), args.beam_width)[0]
        print(f"{path}: {caption}  ({score:.3f})")
