"""Visual instruction data in LLaVA's conversation JSON, read and written.

A file is a list of records, image paths relative to the file:

    [{"id": "0", "image": "images/0.png",
      "conversations": [{"from": "human", "value": "<image>\\nWhat colour is the circle?"},
                        {"from": "gpt", "value": "Red."},
                        {"from": "human", "value": "And what shape is left of it?"},
                        {"from": "gpt", "value": "A square."}]}]

Turns alternate human, gpt, starting with the human and ending with the assistant; `<image>` appears once, in
the first human turn (where in it does not matter: tfmm puts the image tokens first, as LLaVA does). tfmm adds
two optional fields LLaVA ignores: `"intents"`, a label per assistant turn ("count", "colour", ...) that `eval`
reports scores by, and `"labels"`, a label map PNG beside the image (`tfmm.data.region_labels`: the shape,
colour and size under each pixel, the assistant's auxiliary target; the built-in set has them). A bad record (not an
object, a missing field, turns that do not alternate, no `<image>`, an empty question or answer, a missing or
unreadable image or label map) is named by file, index and id, and skipped (`--strict` stops at it).
"""

import dataclasses
import json
import os
from pathlib import Path

from tfmm.data.readers import read_json_file
from tfmm.errors import TfmmError

IMAGE_TOKEN = "<image>"
ROLES = ("human", "gpt")


@dataclasses.dataclass(frozen=True)
class Conversation:
    """One image and its turns: `turns` is ((question, answer), ...) with `<image>` taken out of the first
    question; `intents` one label per turn ("" where the file gives none)."""

    id: str
    image: Path
    turns: tuple
    intents: tuple
    labels: Path = None  # a label map (`tfmm.data.region_labels`), or None

    def __post_init__(self):
        if len(self.intents) != len(self.turns):
            raise ValueError(f"conversation {self.id}: {len(self.intents)} intents for {len(self.turns)} turns")


def _turns(messages):
    """((question, answer), ...) from LLaVA messages, or raise ValueError saying what is wrong."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("'conversations' must be a non-empty list of {\"from\", \"value\"} messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("value"), str):
            raise ValueError(f"message {index} needs a string 'value'")
        expected = ROLES[index % 2]
        if message.get("from") != expected:
            raise ValueError(f"message {index} is from {message.get('from')!r}, expected {expected!r} "
                             "(turns alternate human, gpt, starting with the human)")
    if len(messages) % 2:
        raise ValueError(f"the last message ({len(messages) - 1}) is the human's: it has no answer")
    values = [m["value"] for m in messages]
    if IMAGE_TOKEN not in values[0]:
        raise ValueError(f"the first human message has no {IMAGE_TOKEN}")
    for index, value in enumerate(values):
        if (IMAGE_TOKEN in value) != (index == 0) or value.count(IMAGE_TOKEN) > 1:
            raise ValueError(f"message {index}: {IMAGE_TOKEN} belongs once, in the first human message")
    values[0] = values[0].replace(IMAGE_TOKEN, " ")
    values = [" ".join(v.split()) for v in values]
    for index, value in enumerate(values):
        if not value:
            raise ValueError(f"message {index}: empty {'question' if index % 2 == 0 else 'answer'}")
    return tuple(zip(values[0::2], values[1::2]))


def _intents(record, count):
    intents = record.get("intents")
    if intents is None:
        return ("",) * count
    if not isinstance(intents, list) or len(intents) != count or not all(isinstance(i, str) for i in intents):
        raise ValueError(f"'intents' must be a list of {count} strings, one per assistant turn")
    return tuple(intents)


def read_conversations(path, checks):
    """The usable `Conversation`s of a LLaVA JSON file; bad records are named and skipped through `checks`
    (a `DataChecks`: strict runs stop at the first)."""
    path = Path(path)
    records = read_json_file(path, "conversation file")
    if not isinstance(records, list):
        raise TfmmError(f"{path}: a LLaVA conversation file is a JSON list of records, got {type(records).__name__}")
    conversations, ids = [], set()
    for index, record in enumerate(records):
        where = f"{path}: record {index}"
        try:
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            where += f" (id {record.get('id', '?')!r})"
            for field in ("image", "conversations"):
                if field not in record:
                    raise ValueError(f"missing field {field!r}")
            turns = _turns(record["conversations"])
            intents = _intents(record, len(turns))
            image = path.parent / str(record["image"])
            reason = checks.images.reason(image)
            if reason:
                raise ValueError(f"image {image}: {'file not found' if reason == 'missing' else reason}")
            labels = record.get("labels")
            if labels is not None:
                labels = path.parent / str(labels)
                if not labels.is_file():
                    raise ValueError(f"label map {labels}: file not found")
            identifier = str(record.get("id", index))
            if identifier in ids:
                raise ValueError(f"id {identifier!r} appears twice")
        except ValueError as error:
            checks.rows.reject(where, str(error))
            continue
        ids.add(identifier)
        conversations.append(Conversation(identifier, image, turns, intents, labels))
    return conversations


def conversation_record(conversation, relative_to):
    """A LLaVA record of `conversation`, its image path relative to the folder `relative_to`."""
    messages = []
    for index, (question, answer) in enumerate(conversation.turns):
        messages.append({"from": "human", "value": f"{IMAGE_TOKEN}\n{question}" if index == 0 else question})
        messages.append({"from": "gpt", "value": answer})
    record = {"id": conversation.id, "image": Path(os.path.relpath(conversation.image, relative_to)).as_posix(),
              "conversations": messages}
    if any(conversation.intents):
        record["intents"] = list(conversation.intents)
    if conversation.labels is not None:
        record["labels"] = Path(os.path.relpath(conversation.labels, relative_to)).as_posix()
    return record


def write_conversations(conversations, path):
    """Writes `conversations` as a LLaVA JSON file (image paths relative to it), atomically: a reader never
    sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [conversation_record(c, path.parent.resolve()) for c in conversations]
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    partial.replace(path)
    return path


def conversation_dataset(conversations, label_size=None):
    """A `tf.data.Dataset` of {"image": encoded bytes, "questions", "answers", "intents": (T,) strings} with T the
    longest conversation's number of turns ("" after a shorter one's last turn), so no turn is ever dropped here
    (the preprocessor cuts by tokens). Where every conversation has a label map and `label_size` is given, also
    `"labels"`: uint8 (label_size, label_size, 3), the map's shape, colour and size channels (nearest
    resampling)."""
    import tensorflow as tf

    if not conversations:
        raise TfmmError("no conversations to read")
    width = max(len(c.turns) for c in conversations)

    def padded(values):
        values = list(values)
        return values + [""] * (width - len(values))

    table = {"path": [str(c.image) for c in conversations],
             "questions": [padded(q for q, _ in c.turns) for c in conversations],
             "answers": [padded(a for _, a in c.turns) for c in conversations],
             "intents": [padded(c.intents) for c in conversations]}
    with_labels = label_size is not None and all(c.labels is not None for c in conversations)
    if with_labels:
        table["labels"] = [str(c.labels) for c in conversations]

    def read(row):
        if with_labels:
            labels = tf.io.decode_png(tf.io.read_file(row["labels"]), channels=3)
            row["labels"] = tf.image.resize(labels, (label_size, label_size), method="nearest")
        return {"image": tf.io.read_file(row.pop("path")), **row}

    return tf.data.Dataset.from_tensor_slices(table).map(read, num_parallel_calls=tf.data.AUTOTUNE)
