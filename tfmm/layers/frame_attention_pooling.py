import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class FrameAttentionPooling(keras.layers.Layer):
    """Pools the frames of a clip by attention conditioned on the question.

    Each of `num_heads` heads scores every frame from the frame's pooled features (plus a
    learned frame-position embedding) against a query made from the question, and takes the
    softmax-weighted sum of the frames. Several heads can pick different frames (the first
    and the last, say), which is what questions about motion need; their region grids are
    stacked into one image sequence, each head marked by a learned embedding.

    Inputs: `frame_sequence` (batch, frames, regions, dim), `frame_pooled` (batch, frames, dim),
    `question` (batch, question_dim). Returns `image_sequence` (batch, heads · regions, dim),
    `image_pooled` (batch, dim) and `frame_attention` (batch, heads, frames).
    """

    def __init__(self, num_heads=2, key_dim=64, pooled_used=True, sequence_used=True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        # What the fusion downstream reads: the weights only one output needs are frozen when that output is
        # not read (they would get no gradient, and Keras warns about it on every step).
        self.pooled_used, self.sequence_used = pooled_used, sequence_used

    def build(self, input_shape):
        _, frames, regions, dim = input_shape["frame_sequence"]
        self.frame_position = self.add_weight(name="frame_position", shape=(frames, dim), initializer="zeros")
        self.head_embedding = self.add_weight(name="head_embedding", shape=(self.num_heads, 1, dim), initializer="zeros",
                                              trainable=self.sequence_used)
        dense = lambda units, name: keras.layers.Dense(units, dtype=self.dtype_policy, name=name)  # noqa: E731
        self.key_projection = dense(self.num_heads * self.key_dim, "key_projection")
        self.key_projection.build((None, frames, dim))
        self.query_projection = dense(self.num_heads * self.key_dim, "query_projection")
        self.query_projection.build(input_shape["question"])
        self.pooled_projection = dense(dim, "pooled_projection")
        self.pooled_projection.build((None, self.num_heads * dim))
        self.pooled_projection.trainable = self.pooled_used

    def call(self, inputs):
        sequence, pooled = inputs["frame_sequence"], inputs["frame_pooled"]
        frames, regions, dim = sequence.shape[1], sequence.shape[2], sequence.shape[3]
        pooled = pooled + ops.cast(self.frame_position, pooled.dtype)[None]
        keys = ops.reshape(self.key_projection(pooled), (-1, frames, self.num_heads, self.key_dim))
        query = ops.reshape(self.query_projection(inputs["question"]), (-1, self.num_heads, 1, self.key_dim))
        keys = ops.transpose(keys, (0, 2, 3, 1))  # (batch, heads, key_dim, frames)
        scores = ops.matmul(query, keys)[:, :, 0, :] / (self.key_dim ** 0.5)
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        weights_c = ops.cast(weights, pooled.dtype)
        pooled_heads = ops.matmul(weights_c, pooled)  # (batch, heads, dim)
        image_pooled = self.pooled_projection(ops.reshape(pooled_heads, (-1, self.num_heads * dim)))
        flat = ops.reshape(sequence, (-1, frames, regions * dim))
        picked = ops.reshape(ops.matmul(weights_c, flat), (-1, self.num_heads, regions, dim))
        picked = picked + ops.cast(self.head_embedding, picked.dtype)[None]
        image_sequence = ops.reshape(picked, (-1, self.num_heads * regions, dim))
        return {"image_sequence": image_sequence, "image_pooled": image_pooled, "frame_attention": weights}

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "pooled_used": self.pooled_used, "sequence_used": self.sequence_used}
