"""Caption decoders by config name: `gru_attention` and `transformer`."""

from tfmm.layers.gru_attention_decoder import GRUAttentionDecoder
from tfmm.layers.transformer_caption_decoder import TransformerCaptionDecoder
from tfmm.registry import Registry

DECODERS = Registry("caption decoder")


@DECODERS.register("gru_attention")
def _gru_attention(vocabulary_size, sequence_length, num_regions, hidden_dim, embedding_dim, attention_dim, num_layers,
                   num_heads, intermediate_dim, dropout):
    return GRUAttentionDecoder(vocabulary_size, embedding_dim, hidden_dim, attention_dim, dropout, name="decoder")


@DECODERS.register("transformer")
def _transformer(vocabulary_size, sequence_length, num_regions, hidden_dim, embedding_dim, attention_dim, num_layers,
                 num_heads, intermediate_dim, dropout):
    return TransformerCaptionDecoder(vocabulary_size, sequence_length, num_regions, hidden_dim, num_layers, num_heads,
                                     intermediate_dim, dropout, name="decoder")


def build_decoder(name, **options):
    """`options`: vocabulary_size, sequence_length, num_regions, hidden_dim, embedding_dim, attention_dim,
    num_layers, num_heads, intermediate_dim, dropout (each decoder takes what it uses)."""
    return DECODERS.get(name, "model.decoder")(**options)
