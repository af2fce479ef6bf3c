import sys

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfmm.decoding import sample
from tfmm.errors import TfmmError
from tfmm.models.task import Task, check_images
from tfmm.models.visual_assistant_backbone import VisualAssistantBackbone
from tfmm.models.visual_assistant_preprocessor import VisualAssistantPreprocessor, decode_reply, special_ids


@keras.saving.register_keras_serializable(package="tfmm")
class VisualAssistant(Task):
    """A LLaVA-style assistant: answers in free text about an image, over many turns.

    Trained with `fit` on `{"images", "questions", "answers"}` (turns as (B, T) strings, "" where a shorter
    conversation has none); the loss is the cross-entropy of the answer tokens only. `reply(images, histories,
    questions)` decodes the next answer with the language model's key/value cache (greedy, or sampled with
    `temperature`, `top_k`, `top_p`); a history too long for the context keeps its last turns that fit, and
    says so once.
    """

    backbone_cls = VisualAssistantBackbone
    preprocessor_cls = VisualAssistantPreprocessor

    def __init__(self, backbone, preprocessor=None, max_reply_length=24, **kwargs):
        self.backbone, self.preprocessor = backbone, preprocessor
        super().__init__(inputs=backbone.input, outputs=backbone(backbone.input), **kwargs)
        self.max_reply_length = max_reply_length
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
        logits = ops.cast(y_pred["logits"], "float32")
        per_token = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        weights = ops.ones_like(per_token) if sample_weight is None else ops.cast(sample_weight, "float32")
        loss = ops.sum(per_token * weights) / ops.maximum(ops.sum(weights), 1.0)
        return loss + sum(self.losses) if self.losses else loss

    # ---------------------------------------------------------------------------------------------- replies

    def prompt_ids(self, histories, questions):
        """Host side: per conversation the token ids of its earlier turns and the new question, cut at the
        front to whole turns that fit `sequence_length` with room for a reply; (ids list, turns dropped)."""
        p = self.preprocessor
        room = p.sequence_length - self.max_reply_length
        # two tokenizer calls for the whole batch: every earlier turn, then every new question
        earlier = [turn for history in histories for turn in history]
        turn_ids = p.turn_tokens(tf.constant([q for q, _ in earlier]), tf.constant([a for _, a in earlier]))[0] \
            if earlier else []
        turn_ids = [row.numpy().tolist() for row in turn_ids]
        question_ids = [row.numpy().tolist() for row in p.turn_tokens(tf.constant(list(questions)), None)[0]]
        prompts, dropped, start = [], [], 0
        for history, question, last in zip(histories, questions, question_ids):
            pieces, start = turn_ids[start:start + len(history)], start + len(history)
            if len(last) + 1 > room:
                raise TfmmError(f"question {question!r} is {len(last)} tokens: it does not fit the context of "
                                f"{p.sequence_length} word positions with {self.max_reply_length} for the reply")
            kept = len(pieces)
            while kept and 1 + sum(len(piece) for piece in pieces[len(pieces) - kept:]) + len(last) > room:
                kept -= 1
            dropped.append(len(pieces) - kept)
            prompts.append([token for piece in pieces[len(pieces) - kept:] for token in piece] + last)
        return prompts, dropped

    def reply_tensors(self, images, prompt_ids, temperature=0.0, top_k=0, top_p=1.0, seed=(0, 0)):
        """Raw images and prompt ids (B, Lp; -1 after each prompt, the start token not included) → `token_ids`
        (B, max_reply_length) of the reply, the end token and padding after it, in graph ops."""
        start, end, pad = special_ids(self.preprocessor.tokenizer)
        images = self.preprocessor.convert_images(images)
        language_model = self.backbone.language_model
        prompt_ids = tf.cast(prompt_ids, tf.int32)
        total = tf.shape(prompt_ids)[1] + self.max_reply_length
        state = language_model.initial_state(self.backbone.image_tokens(images), total)
        forced = tf.pad(prompt_ids, [[0, 0], [0, self.max_reply_length]], constant_values=-1)
        batch = tf.shape(prompt_ids)[0]
        drawn = sample(language_model.step, state, batch, start, end, total, temperature, top_k, top_p, seed,
                       pad_id=pad, forced_ids=forced)["token_ids"]
        lengths = tf.reduce_sum(tf.cast(prompt_ids >= 0, tf.int32), axis=1)
        # each reply starts where its prompt ends
        columns = lengths[:, None] + tf.range(self.max_reply_length)[None]
        return {"token_ids": tf.gather(drawn, columns, batch_dims=1)}

    def reply(self, images, histories, questions, temperature=0.0, top_k=0, top_p=1.0, seed=0, batch_size=32):
        """The assistant's answers (strings): `histories` are lists of earlier (question, answer) pairs, one list
        per image ([] for a first question)."""
        questions = self.preprocessor.check_texts(questions, "question")
        images = check_images(images, len(questions))
        if len(histories) != len(questions):
            raise TfmmError(f"{len(histories)} histories for {len(questions)} questions")
        prompts, dropped = self.prompt_ids(histories, questions)
        if any(dropped) and not getattr(self, "_cut_said", False):
            self._cut_said = True
            print(f"note: a conversation is longer than the context of {self.preprocessor.sequence_length} word "
                  f"positions; its first {max(dropped)} turn(s) are left out (said once)", file=sys.stderr)
        width = max(len(p) for p in prompts)
        ids = np.full((len(prompts), width), -1, np.int32)
        for row, prompt in enumerate(prompts):
            ids[row, :len(prompt)] = prompt
        settings = (float(temperature), int(top_k), float(top_p), int(seed))
        function = self.graph_function(f"reply{settings}", lambda images, prompt_ids: self.reply_tensors(
            images, prompt_ids, *settings[:3], tf.constant([settings[3], 0], tf.int64)))
        tokens = self.run_in_batches(function, {"images": images, "prompt_ids": ids}, batch_size)["token_ids"]
        return [decode_reply(self.preprocessor.tokenizer, row) for row in tokens]

    def get_config(self):
        return {**super().get_config(), "max_reply_length": self.max_reply_length}
