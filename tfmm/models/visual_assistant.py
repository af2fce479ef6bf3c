import math
import sys

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfmm.decoding import sample
from tfmm.errors import TfmmError
from tfmm.models.task import Task, check_images
from tfmm.models.visual_assistant_backbone import VisualAssistantBackbone
from tfmm.models.visual_assistant_preprocessor import VisualAssistantPreprocessor, special_ids


def region_loss(region_logits, labels, region_classes):
    """Per example (B,): the cross-entropy of each region's classes (B, R, sum of `region_classes`; R a square
    grid, row-major) against the share of the region's pixels of each class in the label maps (B, S, S, channels
    int; one channel per entry of `region_classes`), averaged over regions and channels. A pixel of a class past
    the channel's count (`region_labels.UNKNOWN`) adds nothing."""
    batch, regions = ops.shape(region_logits)[0], region_logits.shape[1]
    grid, size = math.isqrt(regions), labels.shape[1]
    if size % grid:
        raise TfmmError(f"label maps of {size}×{size} pixels do not split into {grid}×{grid} regions")
    cell, logits, total, start = size // grid, ops.cast(region_logits, "float32"), 0.0, 0
    for channel, count in enumerate(region_classes):
        one_hot = ops.one_hot(ops.cast(labels[..., channel], "int32"), count)
        shares = ops.mean(ops.reshape(one_hot, (batch, grid, cell, grid, cell, count)), axis=(2, 4))
        log_p = ops.log_softmax(logits[..., start:start + count], axis=-1)
        total += -ops.mean(ops.sum(ops.reshape(shares, (batch, regions, count)) * log_p, axis=-1), axis=1)
        start += count
    return total / len(region_classes)


@keras.saving.register_keras_serializable(package="tfmm")
class VisualAssistant(Task):
    """A LLaVA-style assistant: answers in free text about an image, over many turns.

    Trained with `fit` on `{"images", "questions", "answers"}` (turns as (B, T) strings, "" where a shorter
    conversation has none); the loss is the cross-entropy of the answer tokens only. `reply(images, histories,
    questions)` decodes the next answer with the language model's key/value cache (greedy, or sampled with
    `temperature`, `top_k`, `top_p`); a history too long for the context keeps its last turns that fit, and
    says so once.

    With `region_weight` > 0 and a backbone with `region_classes`, `y` may be `{"token_ids", "labels"}` (label
    maps, `tfmm.data.region_labels`): `region_weight` × `region_loss` is added, so the image encoder learns
    what each region shows.
    """

    backbone_cls = VisualAssistantBackbone
    preprocessor_cls = VisualAssistantPreprocessor

    def __init__(self, backbone, preprocessor=None, max_reply_length=24, region_weight=0.0, **kwargs):
        self.backbone, self.preprocessor = backbone, preprocessor
        super().__init__(inputs=backbone.input, outputs=backbone(backbone.input), **kwargs)
        self.max_reply_length, self.region_weight = max_reply_length, region_weight
        if region_weight and not backbone.region_classes:
            raise TfmmError(f"region_weight {region_weight} needs a backbone with region_classes")
        positions = getattr(backbone.language_model.backbone, "max_sequence_length", None)  # GPT-2's learnt ones
        if preprocessor is not None:
            needed = backbone.num_image_tokens + preprocessor.sequence_length
            if positions is not None and needed > positions:
                raise TfmmError(f"{backbone.num_image_tokens} image tokens + sequence_length "
                                f"{preprocessor.sequence_length} = {needed} positions; the language model has "
                                f"{positions}")
            if max_reply_length >= preprocessor.sequence_length:
                raise TfmmError(f"max_reply_length {max_reply_length} leaves no room for the question in "
                                f"sequence_length {preprocessor.sequence_length}")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels = None
        if isinstance(y, dict):
            y, labels = y["token_ids"], y["labels"]
        logits = ops.cast(y_pred["logits"], "float32")
        per_token = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        weights = ops.ones_like(per_token) if sample_weight is None else ops.cast(sample_weight, "float32")
        loss = ops.sum(per_token * weights) / ops.maximum(ops.sum(weights), 1.0)
        if self.region_weight and labels is not None:
            loss += self.region_weight * ops.mean(region_loss(y_pred["region_logits"], labels,
                                                              self.backbone.region_classes))
        return loss + sum(self.losses) if self.losses else loss

    # ---------------------------------------------------------------------------------------------- replies

    def prompt_tensors(self, history, questions):
        """In graph: `history` (B, 2K) strings (question, answer, question, ...; "" pairs for turns a conversation
        does not have) and `questions` (B,) → `prompt_ids` (B, Lp) int32, -1 after each prompt (the start token
        not included): the earlier turns cut at the front to whole turns that fit `sequence_length` with room
        for a reply, then the question; `dropped` (B,) how many turns were cut; `question_length` (B,)."""
        p = self.preprocessor
        room = p.sequence_length - self.max_reply_length
        history, questions = tf.convert_to_tensor(history, tf.string), tf.convert_to_tensor(questions, tf.string)
        batch = tf.shape(questions)[0]
        asked, answered = tf.reshape(history[:, 0::2], [-1]), tf.reshape(history[:, 1::2], [-1])
        turns = tf.RaggedTensor.from_uniform_row_length(p.turn_tokens(asked, answered)[0],
                                                         tf.shape(history, tf.int64)[1] // 2,
                                                         nrows=tf.cast(batch, tf.int64))
        present = tf.reshape(asked != "", [batch, -1])
        lengths = tf.where(present, tf.cast(turns.row_lengths(axis=2).to_tensor(), tf.int32), 0)
        question = p.turn_tokens(questions, None)[0]
        question_length = tf.cast(question.row_lengths(), tf.int32)
        # tokens from each turn to the end: a turn is kept when it and every later one fit (a suffix, so whole turns)
        after = tf.cumsum(lengths, axis=1, reverse=True)
        kept = present & (1 + after + question_length[:, None] <= room)
        joined = tf.ragged.boolean_mask(turns, kept).merge_dims(1, 2)
        prompt = tf.concat([tf.cast(joined, tf.int32), tf.cast(question, tf.int32)], axis=1)
        return {"prompt_ids": prompt.to_tensor(-1),
                "dropped": tf.reduce_sum(tf.cast(present & ~kept, tf.int32), axis=1),
                "question_length": question_length}

    def prompt_ids(self, histories, questions):
        """Host side: `histories` (lists of (question, answer) pairs) and questions → ((B, Lp) int32 ids, -1
        padded; turns dropped per conversation); a question that cannot fit is an error naming it."""
        width = 2 * max([len(h) for h in histories] + [0])
        table = np.full((len(questions), width), "", object)
        for row, history in enumerate(histories):
            table[row, :2 * len(history)] = [text for pair in history for text in pair]
        function = self.graph_function("prompt_tensors", self.prompt_tensors)
        out = function(tf.constant(table.reshape(len(questions), width), tf.string), tf.constant(list(questions)))
        room = self.preprocessor.sequence_length - self.max_reply_length
        for question, length in zip(questions, out["question_length"].numpy()):
            if length + 1 > room:
                raise TfmmError(f"question {question!r} is {length} tokens: it does not fit the context of "
                                f"{self.preprocessor.sequence_length} word positions with {self.max_reply_length} "
                                "for the reply")
        return out["prompt_ids"].numpy(), out["dropped"].numpy().tolist()

    def reply_tensors(self, images, prompt_ids, temperature=0.0, top_k=0, top_p=1.0, seed=(0, 0)):
        """Raw images and prompt ids (B, Lp; -1 after each prompt, the start token not included) → `token_ids`
        (B, max_reply_length) of the reply, the end token and padding after it, and `reply` (B,) its text, in
        graph ops."""
        return self.decode_tensors(self.preprocessor.convert_images(images), prompt_ids, temperature, top_k, top_p,
                                   seed)

    def decode_tensors(self, images, prompt_ids, temperature=0.0, top_k=0, top_p=1.0, seed=(0, 0)):
        """`reply_tensors` on images the preprocessor has already converted (float, as the encoder reads them)."""
        start, end, pad = special_ids(self.preprocessor.tokenizer)
        language_model = self.backbone.language_model
        prompt_ids = tf.cast(prompt_ids, tf.int32)
        batch, lengths = tf.shape(prompt_ids)[0], tf.reduce_sum(tf.cast(prompt_ids >= 0, tf.int32), axis=1)
        # The image tokens, the start token and the prompt tokens every row has but the last go through the model in
        # one pass (prefill); the loop then starts from that last token, forcing each longer prompt's remaining ones.
        prefilled = tf.reduce_min(lengths) - 1
        words = tf.concat([tf.fill([batch, 1], start), prompt_ids[:, :prefilled]], axis=1)
        image_tokens = self.backbone.image_tokens(images)
        prefix = tf.concat([image_tokens, tf.cast(language_model.embed(words), image_tokens.dtype)], axis=1)
        steps = tf.shape(prompt_ids)[1] - prefilled - 1 + self.max_reply_length
        state = language_model.initial_state(prefix, steps)
        forced = tf.pad(prompt_ids[:, prefilled + 1:], [[0, 0], [0, self.max_reply_length]], constant_values=-1)
        drawn = sample(language_model.step, state, batch, prompt_ids[:, prefilled], end, steps, temperature, top_k,
                       top_p, seed, pad_id=pad, forced_ids=forced)["token_ids"]
        # each reply starts where its prompt ends
        columns = (lengths - prefilled - 1)[:, None] + tf.range(self.max_reply_length)[None]
        token_ids = tf.gather(drawn, columns, batch_dims=1)
        return {"token_ids": token_ids, "reply": self.preprocessor.replies(token_ids)}

    def reply(self, images, histories, questions, temperature=0.0, top_k=0, top_p=1.0, seed=0, batch_size=32):
        """The assistant's answers (strings): `histories` are lists of earlier (question, answer) pairs, one list
        per image ([] for a first question)."""
        questions = self.preprocessor.check_texts(questions, "question")
        images = check_images(images, len(questions))
        if len(histories) != len(questions):
            raise TfmmError(f"{len(histories)} histories for {len(questions)} questions")
        ids, dropped = self.prompt_ids(histories, questions)
        if any(dropped) and not getattr(self, "_cut_said", False):
            self._cut_said = True
            print(f"note: a conversation is longer than the context of {self.preprocessor.sequence_length} word "
                  f"positions; its first {max(dropped)} turn(s) are left out (said once)", file=sys.stderr)
        settings = (float(temperature), int(top_k), float(top_p), int(seed))
        function = self.graph_function(f"reply{settings}", lambda images, prompt_ids: self.reply_tensors(
            images, prompt_ids, *settings[:3], tf.constant([settings[3], 0], tf.int64)))
        # Batches of similar prompt lengths: each batch's prompts go through the cache in one pass up to its shortest.
        order = np.argsort((np.asarray(ids) >= 0).sum(axis=1), kind="stable")
        images = images[order] if isinstance(images, np.ndarray) else [images[i] for i in order]
        texts = self.run_in_batches(function, {"images": images, "prompt_ids": ids[order]}, batch_size)["reply"]
        texts = texts[np.argsort(order)]
        return [text.decode("utf-8", errors="replace") for text in texts]  # byte-level BPE may stop mid-character

    def get_config(self):
        return {**super().get_config(), "max_reply_length": self.max_reply_length,
                "region_weight": self.region_weight}
