"""Name → factory registries, so configs can say `image_encoder = "vit"`.

An entry may carry an options dataclass: the fields that variant takes. Configs hold the chosen
variant in a section of its own (`[model.fusion] name = "cross_attention"  num_heads = 4`), and a
field that the chosen variant does not take is an error naming it (`tfmm.config`).
"""

from tfmm.errors import TfmmError


class Registry:
    """A mapping from config names to factories; unknown names list the valid ones."""

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}
        self._options = {}

    def register(self, name, options=None):
        def decorator(factory):
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = factory
            if options is not None:
                self._options[name] = options
            return factory

        return decorator

    def get(self, name, field=None):
        if name not in self._entries:
            where = f" (field {field})" if field else ""
            raise TfmmError(
                f"unknown {self.kind} {name!r}{where}; valid: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]

    def options(self, name, field=None):
        """The options dataclass of variant `name`."""
        self.get(name, field)
        return self._options[name]

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries
