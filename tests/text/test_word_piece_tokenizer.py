import numpy as np
import pytest
import tensorflow as tf

from tfmm.errors import TfmmError
from tfmm.models import Preprocessor
from tfmm.text import RESERVED_TOKENS, WordPieceTokenizer, learn_vocabulary, load_vocabulary, save_vocabulary

TEXTS = ["a small red circle left of a large blue star", "Three shapes: a Tiny cross, a square and a triangle!",
         "there is a large green square on a dark background", "café crème", "unknownword", ""]


@pytest.fixture(scope="module")
def preprocessor():
    return Preprocessor(WordPieceTokenizer(learn_vocabulary(TEXTS[:3] * 5, 200)), sequence_length=16)


def test_vocabulary_has_reserved_tokens_first(preprocessor, tmp_path):
    assert preprocessor.vocabulary[: len(RESERVED_TOKENS)] == RESERVED_TOKENS
    save_vocabulary(preprocessor.vocabulary, tmp_path / "v.txt")
    assert load_vocabulary(tmp_path / "v.txt") == preprocessor.vocabulary
    (tmp_path / "bad.txt").write_text("a\nb\n")
    with pytest.raises(TfmmError, match=r"bad\.txt lacks"):
        load_vocabulary(tmp_path / "bad.txt")


def test_in_graph_and_python_tokenizers_agree(preprocessor):
    graph = tf.function(preprocessor.tokenize)(tf.constant(TEXTS))
    host = preprocessor.tokenize_numpy(TEXTS)
    np.testing.assert_array_equal(graph["token_ids"].numpy(), host["token_ids"])
    np.testing.assert_array_equal(graph["padding_mask"].numpy(), host["padding_mask"])


def test_packing_keeps_the_leading_shape(preprocessor):
    tokenizer = preprocessor.tokenizer
    ids = preprocessor.tokenize_numpy(["a red circle", "a " * 40])
    assert ids["token_ids"].shape == (2, 16)
    assert ids["token_ids"][0, 0] == tokenizer.start_id and tokenizer.end_id in ids["token_ids"][0]
    assert ids["padding_mask"][1].all() and ids["token_ids"][1, -1] == tokenizer.end_id
    pieces = tokenizer.tokenize(["a red circle"])[0]
    assert ids["padding_mask"][0].sum() == len(pieces) + 2  # [CLS] pieces [SEP]
    grouped = preprocessor.tokenize(tf.constant([["a red circle", ""], ["a blue star", "a cross"]]))
    assert grouped["token_ids"].shape == (2, 2, 16)
    np.testing.assert_array_equal(grouped["token_ids"][0, 0], ids["token_ids"][0])


def test_decoding_stops_at_the_end_and_drops_special_tokens(preprocessor):
    tokenizer = preprocessor.tokenizer
    ids = Preprocessor(tokenizer, sequence_length=64).tokenize_numpy(["a small red circle, left of a large blue star!"])["token_ids"]
    ids[0, -1] = ids[0, 1]  # a word after the end token: not part of the caption
    graph = tokenizer.decode(ids)[0].numpy().decode()
    assert graph == tokenizer.decode_numpy(ids[0]) == "a small red circle, left of a large blue star!"
    known = preprocessor.known_words(preprocessor.tokenize_numpy(["zzqx wvvk", "a red zzqx"])["token_ids"]).numpy()
    pieces = preprocessor.tokenize_numpy(["a red"])["padding_mask"][0].sum() - 2  # without [CLS] and [SEP]
    assert known.tolist() == [0, pieces]


def test_preset_assets_round_trip(preprocessor, tmp_path):
    preprocessor.save_to_preset(str(tmp_path))
    assert (tmp_path / "assets" / "tokenizer" / "vocabulary.txt").read_text().split() == preprocessor.vocabulary
    assert Preprocessor.__name__ in (tmp_path / "preprocessor.json").read_text()
