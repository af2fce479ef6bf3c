import numpy as np
import pytest
import tensorflow as tf

from tfmm.errors import TfmmError
from tfmm.text import RESERVED_TOKENS, TextPreprocessor, learn_vocabulary, load_vocabulary, save_vocabulary
from tfmm.testing import assert_layer_round_trip

TEXTS = ["a small red circle left of a large blue star", "Three shapes: a Tiny cross, a square and a triangle!",
         "there is a large green square on a dark background", "café crème", "unknownword", ""]


@pytest.fixture(scope="module")
def preprocessor():
    vocabulary = learn_vocabulary(TEXTS[:3] * 5, 200)
    return TextPreprocessor(vocabulary, 16)


def test_vocabulary_has_reserved_tokens_first(preprocessor, tmp_path):
    assert preprocessor.vocabulary[: len(RESERVED_TOKENS)] == RESERVED_TOKENS
    save_vocabulary(preprocessor.vocabulary, tmp_path / "v.txt")
    assert load_vocabulary(tmp_path / "v.txt") == preprocessor.vocabulary
    (tmp_path / "bad.txt").write_text("a\nb\n")
    with pytest.raises(TfmmError, match=r"bad\.txt lacks"):
        load_vocabulary(tmp_path / "bad.txt")


def test_in_graph_and_python_tokenizers_agree(preprocessor):
    graph = preprocessor(tf.constant(TEXTS))
    host = preprocessor.tokenize_numpy(TEXTS)
    np.testing.assert_array_equal(graph["token_ids"].numpy(), host["token_ids"])
    np.testing.assert_array_equal(graph["padding_mask"].numpy(), host["padding_mask"])


def test_packing(preprocessor):
    ids = preprocessor.tokenize_numpy(["a red circle", "a " * 40])
    assert ids["token_ids"].shape == (2, 16)
    assert ids["token_ids"][0, 0] == preprocessor.start_id and preprocessor.end_id in ids["token_ids"][0]
    assert ids["padding_mask"][1].all() and ids["token_ids"][1, -1] == preprocessor.end_id
    pieces = preprocessor.tokenizer.tokenize(["a red circle"])[0]
    assert ids["padding_mask"][0].sum() == len(pieces) + 2  # [CLS] pieces [SEP]


def test_round_trip(preprocessor):
    assert_layer_round_trip(preprocessor, tf.constant(TEXTS[:2]))
