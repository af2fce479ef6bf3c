import dataclasses
from pathlib import Path

import pytest

from tfmm.apps.assistant_config import AssistantConfig
from tfmm.apps.caption import CaptionConfig
from tfmm.apps.classify import ClassifyConfig
from tfmm.apps.generate import GenerateConfig
from tfmm.apps.retrieval import RetrievalConfig
from tfmm.apps.segment import SegmentConfig
from tfmm.apps.vqa import VQAConfig
from tfmm.config import load_config, save_config
from tfmm.errors import TfmmError

ROOT = Path(__file__).resolve().parents[1]
APPS = {"retrieval": RetrievalConfig, "vqa": VQAConfig, "caption": CaptionConfig, "classify": ClassifyConfig,
        "generate": GenerateConfig, "segment": SegmentConfig, "assistant": AssistantConfig}


@pytest.mark.parametrize("name", APPS)
def test_app_toml_holds_the_defaults_and_round_trips(name, tmp_path):
    config = load_config(APPS[name], ROOT / "apps" / f"{name}.toml")
    assert config == APPS[name]()
    save_config(config, tmp_path / "config.toml")
    assert load_config(APPS[name], tmp_path / "config.toml") == config


def test_overrides_parse_as_toml_and_bare_words():
    config = load_config(RetrievalConfig, None, ["model.image_encoder=vit", "train.epochs=3", "train.learning_rate=1e-4",
                                                 "data.strict=true", 'zero_shot.templates=["a {}"]'])
    assert config.model.image_encoder.name == "vit" and config.model.image_encoder.size == "small"
    assert config.train.epochs == 3 and config.train.learning_rate == pytest.approx(1e-4)
    assert config.data.strict is True
    assert config.zero_shot.templates == ["a {}"]


def test_a_new_variant_keeps_what_both_take_and_drops_the_rest():
    config = load_config(VQAConfig, None, ["model.fusion=bilinear", "model.fusion.rank=8"])
    assert (config.model.fusion.name, config.model.fusion.rank, config.model.fusion.hidden_dim) == ("bilinear", 8, 128)
    switched = load_config(VQAConfig, None, ["model.fusion=co_attention"], base=config)
    assert switched.model.fusion.hidden_dim == 128 and not hasattr(switched.model.fusion, "rank")
    both = load_config(VQAConfig, None, ["model.fusion.num_heads=2", "model.fusion=cross_attention"])
    assert (both.model.fusion.name, both.model.fusion.num_heads) == ("cross_attention", 2)


@pytest.mark.parametrize("overrides,message", [
    (["model.fusion.rank=8"], "model.fusion.rank: fusion 'concat' does not take 'rank'; it takes hidden_dim, dropout"),
    (["model.fusion=cross_attention", "model.fusion.num_heads=3"], "model.fusion.hidden_dim 128 is not divisible by model.fusion.num_heads 3"),
    (["model.image_encoder=vit", "model.image_encoder.normalization=batch"], "image encoder 'vit' does not take 'normalization'"),
    (["model.image_encoder=vit", "data.image_size=60"], "data.image_size 60 is not divisible by the patch size 8"),
    (["model.fusion=attention"], "unknown fusion 'attention' (field model.fusion)"),
    (["data.validation_fraction=0.5"], "data.validation_fraction must be in [0, 0.5), got 0.5"),
    (["data.batch_size=0"], "data.batch_size must be above 0, got 0"),
    (["train.learning_rate=-1"], "train.learning_rate must be above 0, got -1.0"),
    (["train.strategy=ddp"], "train.strategy must be one of auto, default, mirrored"),
    (['export.tflite_quantization=["float16"]'], "export.tflite_quantization has ['float16']"),
    (["model.image_encoder.trainable=half"], "model.image_encoder.trainable must be full, frozen, top-N, freeze-K or lora-R"),
])
def test_wrong_settings_fail_in_one_line_naming_key_and_value(overrides, message):
    with pytest.raises(TfmmError) as error:
        load_config(VQAConfig, None, overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("cls,overrides,message", [
    (RetrievalConfig, ['zero_shot.templates=["a photo"]'], "zero_shot.templates: 'a photo' must contain '{}' exactly once"),
    (RetrievalConfig, ["model.loss.margin=0.3"], "contrastive loss 'infonce' does not take 'margin'"),
    (CaptionConfig, ["decode.beam_width=9"], "decode.beam_width 9 is above decode.max_beam_width 8"),
    (CaptionConfig, ['export.tflite_quantization=["int8"]'], "this app's models convert to float32, dynamic_int8"),
    (CaptionConfig, ["model.decoder.attention_dim=64"], "caption decoder 'transformer' does not take 'attention_dim'"),
    (GenerateConfig, ["vqvae.downsample=8", "data.image_size=36"], "data.image_size 36 is not divisible by vqvae.downsample 8"),
    (GenerateConfig, ["sampling.top_k=-1"], "sampling.top_k must be at least 0, got -1"),
    (ClassifyConfig, ['data.label_columns=["diagnosis"]'], "shapes_reports has the labels finding, shape, colour"),
    (ClassifyConfig, ["model.loss_weights=[1.0]"], "model.loss_weights has 1 values for 3 label columns"),
])
def test_app_rules(cls, overrides, message):
    with pytest.raises(TfmmError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
                       .replace("{", r"\{").replace("}", r"\}").replace("'", "'")):
        load_config(cls, None, overrides)


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
    config = load_config(RetrievalConfig, None, ["model.embedding_dim=64", "data.augment.flip=true", "model.loss=triplet"])
    save_config(config, tmp_path / "config.toml")
    again = load_config(RetrievalConfig, tmp_path / "config.toml")
    assert dataclasses.asdict(again) == dataclasses.asdict(config) and again.model.loss.margin == 0.2
