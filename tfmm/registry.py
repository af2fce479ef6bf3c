"""Name → factory registries, so configs can say `image_encoder = "vit"`."""

from tfmm.errors import TfmmError


class Registry:
    """A mapping from config names to factories; unknown names list the valid ones."""

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name):
        def decorator(factory):
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = factory
            return factory

        return decorator

    def get(self, name, field=None):
        if name not in self._entries:
            where = f" (field {field})" if field else ""
            raise TfmmError(
                f"unknown {self.kind} {name!r}{where}; valid: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries
