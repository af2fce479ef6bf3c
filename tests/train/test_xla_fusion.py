"""train.xla_fusion: XLA compiles the element-wise work only while it is on, the setting is restored after,
training computes the same losses, and it cannot be combined with whole-step XLA."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tfmm.apps.retrieval import Retrieval
from tfmm.cli import overrides
from tfmm.config import load_config
from tfmm.errors import TfmmError
from tfmm.train import xla_fusion as xla_fusion_module
from tfmm.train.xla_fusion import fusion_enabled

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent("""
    import json, os, sys
    os.environ["XLA_FLAGS"] = "--xla_dump_to=" + sys.argv[1]  # every module XLA compiles lands here
    import tfmm
    import keras, numpy as np, tensorflow as tf
    from tfmm.train.xla_fusion import xla_fusion

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")

    def losses(fusion):
        keras.utils.set_random_seed(0)
        with xla_fusion(fusion):
            model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="gelu"),
                                      keras.layers.LayerNormalization(), keras.layers.Dense(1)])
            model.compile(keras.optimizers.AdamW(1e-2), "mse")
            return model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]

    off = losses(False)
    compiled_off = len(os.listdir(sys.argv[1])) if os.path.isdir(sys.argv[1]) else 0
    on = losses(True)
    print(json.dumps({"off": off, "on": on, "compiled_off": compiled_off, "compiled_on": len(os.listdir(sys.argv[1])),
                      "jit_after": tf.config.optimizer.get_jit(), "flags": os.environ["TF_XLA_FLAGS"]}))
""")


def test_fusion_compiles_with_xla_only_while_on_and_trains_the_same(tmp_path):
    # A fresh process: TensorFlow reads its XLA flags once, and auto-clustering is process-wide.
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "dump")], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["compiled_off"] == 0
    assert result["compiled_on"] > 0
    assert result["jit_after"] == ""  # switched back off after the block
    assert "--tf_xla_ops_to_cluster=FUSIBLE" in result["flags"] and "--tf_xla_cpu_global_jit" in result["flags"]
    assert result["on"] == pytest.approx(result["off"], rel=1e-4)
    assert result["on"][-1] < result["on"][0]  # it trained


def test_whole_step_xla_and_fusion_exclude_each_other():
    app = Retrieval()
    with pytest.raises(TfmmError, match='train.jit_compile and train.xla_fusion = "on" exclude each other'):
        load_config(app.config_class, ROOT / "apps" / "retrieval.toml", ["train.jit_compile=true", 'train.xla_fusion="on"'])
    with pytest.raises(TfmmError, match="train.xla_fusion.*must be one of off, on, auto"):
        load_config(app.config_class, ROOT / "apps" / "retrieval.toml", ['train.xla_fusion="yes"'])
    # --jit-compile swaps the fusion for whole-step XLA
    given = overrides(type("Args", (), {"set": ['train.xla_fusion="on"'], "jit_compile": True})())
    config = load_config(app.config_class, ROOT / "apps" / "retrieval.toml", given)
    assert config.train.jit_compile and config.train.xla_fusion == "off"


@pytest.mark.parametrize("amx", [True, False])
def test_auto_turns_fusion_on_only_for_cpus_with_amx(monkeypatch, amx):
    monkeypatch.setattr(xla_fusion_module, "cpu_has_amx", lambda: amx)
    assert fusion_enabled("auto") is amx  # this test machine has no GPU (CI never has one)
    assert fusion_enabled("auto", jit_compile=True) is False  # whole-step XLA compiles it all anyway
    assert fusion_enabled("on") is True and fusion_enabled("off") is False


def test_amx_and_bfloat16_are_read_from_the_cpu_flags():
    from tfmm.train.precision import native_bfloat16

    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), None) if Path("/proc/cpuinfo").is_file() else None
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags on this system: both are False by design there")
    assert xla_fusion_module.cpu_has_amx() == ("amx_tile" in flags)
    assert native_bfloat16() == ("amx_bf16" in flags or "avx512_bf16" in flags)
