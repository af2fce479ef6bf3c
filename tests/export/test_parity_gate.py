"""A TFLite file that disagrees with its Keras model is not shipped: the export says which and why,
`--strict` fails instead and writes nothing, and the parity figures travel with the SavedModel."""

import dataclasses
import json

import pytest

from tfmm.config import ParityGate
from tfmm.errors import TfmmError
from tfmm.export.tflite import gate_tflite, quantization_of


def _folder(tmp_path, int8_cosine):
    parity = {f"{tower}_{q}.tflite": {"min_cosine": value, "bytes": 10}
              for q, value in (("float32", 1.0), ("dynamic_int8", 0.97), ("int8", int8_cosine))
              for tower in ("image_encoder", "text_encoder")}
    parity["text_encoder_int8.tflite"]["min_cosine"] = 0.99  # one tower is fine: the quantization goes as a set
    for name in parity:
        (tmp_path / name).write_bytes(b"tflite")
    (tmp_path / "parity.json").write_text(json.dumps(parity))
    return tmp_path


def test_quantization_is_read_from_the_end_of_the_name():
    assert [quantization_of(n) for n in ("answerer_dynamic_int8.tflite", "answerer_int8.tflite", "float32",
                                         "caption_step_int8.tflite")] == ["dynamic_int8", "int8", "float32", "int8"]


def test_a_quantization_below_its_threshold_is_left_out_with_the_reason(tmp_path, capsys):
    folder = _folder(tmp_path, int8_cosine=0.6)
    parity = gate_tflite(folder, ParityGate())
    assert sorted(p.name for p in folder.glob("*.tflite")) == [
        "image_encoder_dynamic_int8.tflite", "image_encoder_float32.tflite",
        "text_encoder_dynamic_int8.tflite", "text_encoder_float32.tflite"]
    assert parity["image_encoder_int8.tflite"]["gate"] == {"measure": "min_cosine", "value": 0.6, "threshold": 0.9,
                                                           "shipped": False}
    assert parity["text_encoder_int8.tflite"]["gate"]["shipped"] is False  # above its threshold, but its pair is not
    assert all(parity[f"{t}_{q}.tflite"]["gate"]["shipped"] for t in ("image_encoder", "text_encoder")
               for q in ("float32", "dynamic_int8"))
    assert json.loads((folder / "parity.json").read_text()) == parity
    out = capsys.readouterr().out
    assert "not shipped: the int8 TFLite files (image_encoder_int8.tflite: min_cosine 0.600 < 0.9" in out
    # a user who accepts the loss says so in the config
    (tmp_path / "lenient").mkdir()
    folder = _folder(tmp_path / "lenient", int8_cosine=0.6)
    gate_tflite(folder, ParityGate(int8=0.5))
    assert len(list(folder.glob("*.tflite"))) == 6


def test_strict_gate_fails_and_removes_nothing(tmp_path):
    folder = _folder(tmp_path, int8_cosine=0.6)
    with pytest.raises(TfmmError, match=r"TFLite int8 below export\.parity\.int8 \(image_encoder_int8\.tflite: "
                                        r"min_cosine 0\.600 < 0\.9\); nothing was exported \(strict\)"):
        gate_tflite(folder, ParityGate(strict=True))
    assert len(list(folder.glob("*.tflite"))) == 6


def test_export_leaves_out_a_failing_file_and_keeps_parity_in_assets_extra(trained_run, tmp_path):
    config = trained_run.config
    gate = ParityGate(int8=1.0)  # no int8 file agrees exactly: left out
    export = dataclasses.replace(config.export, base_dir=str(tmp_path), tflite_quantization=["int8"], parity=gate)
    config = dataclasses.replace(config, export=export)
    version = trained_run.runner.export(trained_run.task, config, "gated")
    assert not list((version / "tflite").glob("*.tflite"))
    parity = json.loads((version / "assets.extra" / "tfmm_parity.json").read_text())
    assert parity == json.loads((version / "tflite" / "parity.json").read_text())
    assert parity["image_encoder_int8.tflite"]["gate"]["shipped"] is False
    assert 0.9 < parity["image_encoder_int8.tflite"]["gate"]["value"] < 1.0  # a good file, held to an impossible bar

    strict = dataclasses.replace(config, export=dataclasses.replace(export, parity=dataclasses.replace(gate, strict=True)))
    with pytest.raises(TfmmError, match="nothing was exported"):
        trained_run.runner.export(trained_run.task, strict, "gated")
    assert sorted(p.name for p in (tmp_path / "gated").iterdir()) == [version.name]  # no half-written version


def test_an_export_is_quiet_and_says_what_it_left_out(trained_run, tmp_path):
    """TFLite conversion and LiteRT print progress lines of their own to stderr; a normal export shows none of
    them, only its result (and, here, the gate's verdict on a file that misses a threshold set to 1)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "tfmm.apps.retrieval", "export", "--model", str(trained_run.path), "--name", "quiet",
         "--set", f"export.base_dir={tmp_path}", "--set", 'export.tflite_quantization=["float32", "int8"]',
         "--set", "export.parity.int8=1.0"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    assert "not shipped: the int8 TFLite files" in result.stdout and f"exported {tmp_path / 'quiet' / '1'}" in result.stdout
