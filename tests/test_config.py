import dataclasses
from pathlib import Path

import pytest

from tfmm.apps.retrieval import RetrievalConfig
from tfmm.config import load_config, save_config
from tfmm.errors import TfmmError

ROOT = Path(__file__).resolve().parents[1]


def test_app_toml_holds_the_defaults():
    assert load_config(RetrievalConfig, ROOT / "apps" / "retrieval.toml") == RetrievalConfig()


def test_overrides_parse_as_toml_and_bare_words():
    config = load_config(RetrievalConfig, None, ["model.image_encoder=vit", "train.epochs=3", "train.learning_rate=1e-4",
                                                 "data.strict=true", 'zero_shot.templates=["a {}"]'])
    assert config.model.image_encoder == "vit"
    assert config.train.epochs == 3 and config.train.learning_rate == pytest.approx(1e-4)
    assert config.data.strict is True
    assert config.zero_shot.templates == ["a {}"]


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model]\nimage_encodr = 'cnn'\n")
    with pytest.raises(TfmmError, match=r"bad\.toml.*'model\.image_encodr'"):
        load_config(RetrievalConfig, path)
    with pytest.raises(TfmmError, match=r"--set.*'train\.epoch'"):
        load_config(RetrievalConfig, None, ["train.epoch=2"])


def test_wrong_type_names_the_field():
    with pytest.raises(TfmmError, match="train.epochs.*int"):
        load_config(RetrievalConfig, None, ["train.epochs=many"])


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(TfmmError, match="not found"):
        load_config(RetrievalConfig, tmp_path / "none.toml")
    (tmp_path / "x.toml").write_text("[model\n")
    with pytest.raises(TfmmError, match="invalid TOML"):
        load_config(RetrievalConfig, tmp_path / "x.toml")


def test_saved_config_loads_back_equal(tmp_path):
    config = load_config(RetrievalConfig, None, ["model.embedding_dim=64", "data.augment.flip=true"])
    save_config(config, tmp_path / "config.toml")
    again = load_config(RetrievalConfig, tmp_path / "config.toml")
    assert dataclasses.asdict(again) == dataclasses.asdict(config)


def test_vqa_toml_holds_the_defaults():
    from tfmm.apps.vqa import VQAConfig

    assert load_config(VQAConfig, ROOT / "apps" / "vqa.toml") == VQAConfig()


def test_classify_toml_holds_the_defaults():
    from tfmm.apps.classify import ClassifyConfig

    assert load_config(ClassifyConfig, ROOT / "apps" / "classify.toml") == ClassifyConfig()
