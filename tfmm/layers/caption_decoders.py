"""Caption decoders by config name, each with the options it takes:

    [model.decoder]
    name = "transformer"    # or "gru_attention"
    num_layers = 2
"""

import dataclasses

from tfmm.config import at_least, between, positive
from tfmm.errors import TfmmError
from tfmm.layers.gru_attention_decoder import GRUAttentionDecoder
from tfmm.layers.transformer_caption_decoder import TransformerCaptionDecoder
from tfmm.registry import Registry

DECODERS = Registry("caption decoder")


@dataclasses.dataclass
class TransformerDecoderOptions:
    name: str = "transformer"
    hidden_dim: int = positive(256)
    num_layers: int = positive(2)
    num_heads: int = positive(4)
    intermediate_dim: int = positive(512)
    dropout: float = between(0, 1, 0.1)

    def validate(self, root):
        if self.hidden_dim % self.num_heads:
            raise TfmmError(f"model.decoder.hidden_dim {self.hidden_dim} is not divisible by "
                            f"model.decoder.num_heads {self.num_heads}")


@dataclasses.dataclass
class GRUAttentionDecoderOptions:
    name: str = "gru_attention"
    hidden_dim: int = positive(256)  # GRU state
    embedding_dim: int = positive(128)  # word embedding and deep output
    attention_dim: int = positive(128)  # additive attention
    dropout: float = between(0, 1, 0.1)
    attention_regularizer: float = at_least(0, 0.0)  # doubly stochastic attention λ (the paper uses 1); 0 = off


@DECODERS.register("transformer", TransformerDecoderOptions)
def _transformer(options, vocabulary_size, sequence_length, num_regions):
    return TransformerCaptionDecoder(vocabulary_size, sequence_length, num_regions, options.hidden_dim, options.num_layers,
                                     options.num_heads, options.intermediate_dim, options.dropout, name="decoder")


@DECODERS.register("gru_attention", GRUAttentionDecoderOptions)
def _gru_attention(options, vocabulary_size, sequence_length, num_regions):
    return GRUAttentionDecoder(vocabulary_size, options.embedding_dim, options.hidden_dim, options.attention_dim,
                               options.dropout, name="decoder")


def decoder_options(name, **values):
    return DECODERS.options(name, "model.decoder")(**values)


def build_decoder(options, vocabulary_size, sequence_length, num_regions):
    """The caption decoder its options name."""
    return DECODERS.get(options.name, "model.decoder")(options, vocabulary_size, sequence_length, num_regions)
