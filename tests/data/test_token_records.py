import numpy as np
import pytest

from tfmm.data.token_records import read_token_records, write_token_records
from tfmm.errors import TfmmError


def test_token_records_round_trip_over_shards(tmp_path):
    tokens = np.arange(5 * 4).reshape(5, 2, 2)
    captions = [[f"caption {i}", "another"] for i in range(5)]
    pattern, count = write_token_records([(captions[:3], tokens[:3], ["a"] * 3), (captions[3:], tokens[3:], ["b"] * 2)],
                                         tmp_path, shard_size=2)
    assert count == 5 and len(list(tmp_path.glob("*.tfrecord"))) == 3 and not list(tmp_path.glob("*.partial"))
    read = list(read_token_records(pattern).as_numpy_iterator())
    assert [r["captions"][0].decode() for r in read] == [c[0] for c in captions]
    np.testing.assert_array_equal(np.stack([r["tokens"] for r in read]), tokens.reshape(5, -1))
    assert [r["objects"] for r in read] == [b"a"] * 3 + [b"b"] * 2


def test_missing_records_are_named(tmp_path):
    with pytest.raises(TfmmError, match="no token records match"):
        read_token_records(tmp_path / "none-*.tfrecord")
