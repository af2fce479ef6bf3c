import keras
import keras_hub
import tensorflow as tf

from tfmm.models.preprocessor import Preprocessor
from tfmm.text import WordPieceTokenizer

USER, ASSISTANT = "user:", "assistant:"


def special_ids(tokenizer):
    """(start, end, pad) ids of a tfmm WordPiece tokenizer or a keras-hub GPT-2 / Gemma one (GPT-2 starts,
    ends and pads with its one `<|endoftext|>`)."""
    if hasattr(tokenizer, "start_id"):
        return tokenizer.start_id, tokenizer.end_id, tokenizer.pad_id
    end = tokenizer.end_token_id
    start = getattr(tokenizer, "start_token_id", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    return (end if start is None else start), end, (end if pad is None else pad)


@keras.saving.register_keras_serializable(package="tfmm")
class VisualAssistantPreprocessor(Preprocessor):
    """Conversations → the language model's words, LLaVA-style: `start`, then per turn "user: <question>
    assistant:" and the answer's tokens with the end token; only answer tokens (and their end) carry loss.

    `x`: `images` (uint8 pixels or encoded bytes) and `questions`, `answers` (B, T) strings, "" for the turns a
    shorter conversation does not have. Returns `({"images", "token_ids", "padding_mask"}, next ids, weights)`
    with `sequence_length` word positions; a longer conversation loses its tail (`prompt_ids` keeps the last
    turns that fit instead, for replies). `sequence_length` + the image tokens must fit the language model.
    With `y = {"labels"}` (label maps (B, S, S, channels), `tfmm.data.region_labels`), the target is
    `{"token_ids", "labels"}`: the next ids and the maps as int32 (see `VisualAssistant.region_weight`).
    """

    def packing_ids(self):
        """The start token first, no end token added (each answer brings its own), padding after."""
        start, _, pad = special_ids(self.tokenizer)
        return {"start_value": start, "end_value": None, "pad_value": pad}

    def build(self, input_shape=None):
        if self.packer is None:
            # ids and weights are packed alike: the start token first, the tail cut, padding after
            self.packer = keras_hub.layers.StartEndPacker(self.sequence_length + 1, return_padding_mask=True,
                                                          **self.packing_ids())
            self.weight_packer = keras_hub.layers.StartEndPacker(self.sequence_length + 1, start_value=0, pad_value=0)
        self.built = True

    def replies(self, token_ids):
        """In graph: reply token ids (B, L) → strings (B,): the tokens before the first end token, padding
        dropped."""
        if isinstance(self.tokenizer, WordPieceTokenizer):  # pieces joined, special tokens dropped
            return self.tokenizer.decode(token_ids)
        _, end, pad = special_ids(self.tokenizer)
        ids = tf.cast(token_ids, tf.int32)
        before_end = tf.cumsum(tf.cast(ids == end, tf.int32), axis=1) == 0
        return tf.strings.strip(self.tokenizer.detokenize(tf.ragged.boolean_mask(ids, before_end & (ids != pad))))

    def _words(self, texts):
        tokens = self.tokenizer(texts)
        if isinstance(tokens, list):  # keras-hub hands eager results back as lists
            return tf.ragged.constant(tokens, dtype=tf.int32, ragged_rank=1)
        return tokens if isinstance(tokens, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(tokens)

    def turn_tokens(self, questions, answers):
        """Flat (N,) questions and answers → (token ids, loss weights), ragged (N, None): the prompt of the turn
        then, where the answer is not None, its tokens and the end token."""
        _, end, _ = special_ids(self.tokenizer)
        prompt = tf.cast(self._words(tf.strings.join([USER + " ", questions, " " + ASSISTANT])), tf.int32)
        if answers is None:
            return prompt, tf.zeros_like(prompt)
        reply = tf.cast(self._words(answers), tf.int32)
        ends = tf.RaggedTensor.from_tensor(tf.fill([tf.shape(answers)[0], 1], tf.constant(end, tf.int32)))
        reply = tf.concat([reply, ends], axis=1)
        return tf.concat([prompt, reply], axis=1), tf.concat([tf.zeros_like(prompt), tf.ones_like(reply)], axis=1)

    def conversation_tokens(self, questions, answers):
        """(B, T) questions and answers ("" = no such turn) → (ids, weights), ragged (B, None): each
        conversation's turns joined."""
        if not self.built:
            self.build()
        present = tf.reshape(questions != "", [-1])
        ids, weights = self.turn_tokens(tf.reshape(questions, [-1]), tf.reshape(answers, [-1]))
        turns = tf.reduce_sum(tf.cast(questions != "", tf.int64), axis=1)

        def joined(values):
            kept = tf.ragged.boolean_mask(values, present)
            return tf.RaggedTensor.from_row_lengths(kept, turns).merge_dims(1, 2)

        return joined(ids), joined(weights)

    def call(self, x, y=None, sample_weight=None):
        images = self.convert_images(x["images"])
        ids, weights = self.conversation_tokens(tf.convert_to_tensor(x["questions"]), tf.convert_to_tensor(x["answers"]))
        ids, padding_mask = self.packer(ids)
        weights = tf.cast(self.weight_packer(weights), tf.float32)
        inputs = {"images": images, "token_ids": ids[:, :-1], "padding_mask": tf.cast(padding_mask[:, :-1], tf.int32)}
        target = ids[:, 1:]
        if y is not None:
            target = {"token_ids": target, "labels": tf.cast(y["labels"], tf.int32)}
        return keras.utils.pack_x_y_sample_weight(inputs, target, weights[:, 1:])
