import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class GridPositions(keras.layers.Layer):
    """(B, side², H) tokens of a square grid, row-major → the same plus a learnt row embedding and a learnt column
    embedding (factorised 2-D positions, as ViT variants use). A language model's own positions number the tokens
    one after another, so "column 2" is four unrelated positions on a 4×4 grid; here it is one vector, shared by
    every row, which is what "left of" compares."""

    def __init__(self, side, **kwargs):
        super().__init__(**kwargs)
        self.side = int(side)

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] != self.side ** 2:
            raise ValueError(f"GridPositions({self.side}) takes {self.side ** 2} tokens, got {input_shape[1]}")
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.rows = self.add_weight(shape=(self.side, input_shape[-1]), initializer=init, name="rows")
        self.columns = self.add_weight(shape=(self.side, input_shape[-1]), initializer=init, name="columns")

    def call(self, tokens):
        grid = self.rows[:, None, :] + self.columns[None, :, :]  # (row, column, H)
        return tokens + ops.cast(ops.reshape(grid, (self.side * self.side, -1)), tokens.dtype)

    def get_config(self):
        return {**super().get_config(), "side": self.side}
