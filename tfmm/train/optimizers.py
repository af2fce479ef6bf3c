import keras


@keras.saving.register_keras_serializable(package="tfmm")
class LayerwiseAdamW(keras.optimizers.AdamW):
    """AdamW whose learning rate is scaled per variable: `multipliers` maps variable paths to a factor.

    Used to fine-tune pretrained encoders more gently than the new layers on top (a smaller
    learning rate for pretrained parts). Scaling the gradients instead would do nothing: Adam's
    steps do not depend on the gradient's scale.
    """

    def __init__(self, multipliers=None, **kwargs):
        super().__init__(**kwargs)
        self.multipliers = dict(multipliers or {})
        self._factors = {}

    def build(self, variables):
        super().build(variables)
        # update_step gets the backend's variable (no `path`): key the factors the way Keras keys variables.
        self._factors = {self._var_key(v): self.multipliers[v.path] for v in variables if v.path in self.multipliers}

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors.get(self._var_key(variable), 1.0)
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "multipliers": self.multipliers}
