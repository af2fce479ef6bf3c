"""The assistant on a device: its exported TFLite models driven by Python, NumPy and the LiteRT interpreter only.

The export's `tflite/` folder holds `assistant_encoder_<q>.tflite` (image → the language model's key/value caches
with the image tokens in them), `assistant_step_<q>.tflite` (one token, its index and the caches → next-token
logits and the caches), this file, `vocabulary.txt` (WordPiece) and `assistant_decoding.json`. The loop below
tokenizes the conversation as the model was trained ("user: <question> assistant:" then the answer and the end
token per turn), keeps the last whole turns that fit the context, feeds the prompt one token at a time and then
decodes greedily. It is self-contained (copied into every export) so an app on the device can use it as it is:

    python assistant_on_device.py image.png "what colour is the circle?" [--quantization float32]
"""

import json
import sys
import unicodedata
from pathlib import Path

import numpy as np


def _interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # older installs ship the interpreter as tflite_runtime
        from tflite_runtime.interpreter import Interpreter
    return Interpreter(model_path=str(path))


def _is_punctuation(character):
    code = ord(character)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(character).startswith("P")


class WordPiece:
    """Lower-cased, accent-stripped WordPiece as the model's tokenizer: words split at spaces and punctuation,
    each spelt by the longest pieces of the vocabulary (`##` inside a word), `[UNK]` for a word it cannot spell."""

    def __init__(self, vocabulary):
        self.vocabulary = vocabulary
        self.ids = {token: index for index, token in enumerate(vocabulary)}

    def words(self, text):
        text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
        words, current = [], ""
        for character in text:
            if character.isspace() or _is_punctuation(character):
                words += [current] if current else []
                words += [character] if not character.isspace() else []
                current = ""
            else:
                current += character
        return words + ([current] if current else [])

    def __call__(self, text):
        ids = []
        for word in self.words(text):
            pieces, start = [], 0
            while start < len(word):
                end = len(word)
                while end > start and (("##" if start else "") + word[start:end]) not in self.ids:
                    end -= 1
                if end == start:
                    pieces = [self.ids["[UNK]"]]
                    break
                pieces.append(self.ids[("##" if start else "") + word[start:end]])
                start = end
            ids += pieces
        return ids

    def decode(self, ids, special):
        words = " ".join(self.vocabulary[i] for i in ids if i not in special).replace(" ##", "")
        for mark in ",.;:!?":
            words = words.replace(" " + mark, mark)
        return words.strip()


class OnDeviceAssistant:
    def __init__(self, folder, quantization="float32"):
        folder = Path(folder)
        self.settings = json.loads((folder / "assistant_decoding.json").read_text())
        vocabulary = (folder / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
        self.tokenizer = WordPiece(vocabulary)
        self.special = {self.tokenizer.ids[t] for t in ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]") if t in self.tokenizer.ids}
        self.encoder = _interpreter(folder / f"assistant_encoder_{quantization}.tflite").get_signature_runner()
        self.step_runner = _interpreter(folder / f"assistant_step_{quantization}.tflite").get_signature_runner()

    @property
    def image_size(self):
        return self.settings["image_size"]

    def turn(self, question, answer=None):
        s = self.settings
        ids = self.tokenizer(f"{s['user']} {question} {s['assistant']}")
        return ids if answer is None else ids + self.tokenizer(answer) + [s["end_id"]]

    def prompt(self, history, question):
        """The prompt's ids (without the start token) and how many earlier turns were left out to fit."""
        s = self.settings
        room = s["sequence_length"] - s["max_reply_length"]
        last = self.turn(question)
        if len(last) + 1 > room:
            raise ValueError(f"question {question!r} is {len(last)} tokens: it does not fit the context")
        turns = [self.turn(q, a) for q, a in history]
        kept = len(turns)
        while kept and 1 + sum(len(t) for t in turns[len(turns) - kept:]) + len(last) > room:
            kept -= 1
        return [t for turn in turns[len(turns) - kept:] for t in turn] + last, len(turns) - kept

    def reply(self, image, history, question):
        """One float image (S, S, 3) as the model reads it, the earlier (question, answer) pairs and a question →
        the reply (greedy)."""
        s = self.settings
        prompt, _ = self.prompt(history, question)
        state = self.encoder(images=np.asarray(image, np.float32)[None])
        token, reply = s["start_id"], []
        for index in range(len(prompt) + s["max_reply_length"]):
            out = self.step_runner(token_ids=np.array([token], np.int32), index=np.array(index, np.int32), **state)
            logits = out.pop("logits")[0]
            state = out
            if index < len(prompt):
                token = prompt[index]
                continue
            token = int(np.argmax(logits))
            if token == s["end_id"]:
                break
            reply.append(token)
        return self.tokenizer.decode(reply, self.special)


def _load_image(path, size):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255.0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("question", nargs="?", help="one question; without it, a conversation over stdin lines")
    parser.add_argument("--quantization", default="float32")
    args = parser.parse_args()
    assistant = OnDeviceAssistant(Path(__file__).parent, args.quantization)
    pixels, history = _load_image(args.image, assistant.image_size), []
    for question in [args.question] if args.question else (line.strip() for line in sys.stdin):
        if not question:
            break
        answer = assistant.reply(pixels, history, question)
        print(answer)
        history.append((question, answer))
