"""What every suite shares: the record of where and on what code it ran, tables, timers, scratch space."""

import hashlib
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile", "fma")


def machine():
    """CPU model, the flags that decide which kernels run (AVX-512 bf16, AMX), cores and library versions."""
    import keras
    import tensorflow as tf

    from tfmm.train.precision import cpu_flags

    cpu = platform.processor() or "unknown CPU"
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name") and cpu in ("unknown CPU", platform.processor()):
                cpu = line.split(":", 1)[1].strip()
    return {"cpu": cpu, "flags": [f for f in CPU_FLAGS if f in cpu_flags()], "cores": os.cpu_count(),
            "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            # `import tfmm` sets it to 1 unless the user set it (TensorFlow alone turns oneDNN on only with AVX-512
            # VNNI/BF16 or AMX); records from before that say "unset".
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TensorFlow's choice)")}


def git_state():
    """(commit, dirty): the code the numbers come from."""
    def git(*args):
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    return git("rev-parse", "--short=12", "HEAD") or "unknown", bool(git("status", "--porcelain", "--untracked-files=no"))


class Report:
    """The tables of one suite run, written as `benchmarks/<suite>.json`."""

    def __init__(self, suite, command, settings, smoke=False):
        self.suite, self.command, self.settings, self.smoke = suite, command, settings, smoke
        self.tables, self.summary = [], {}
        self.started = time.time()

    def table(self, title, columns, rows, note=""):
        self.tables.append({"title": title, "columns": list(columns), "rows": [[_cell(c) for c in row] for row in rows],
                            "note": note})
        print(f"\n{title}\n" + render_table(self.tables[-1]))

    def record(self, **values):
        """Headline numbers other tools read (the README's targets)."""
        self.summary.update(values)

    def write(self, folder):
        commit, dirty = git_state()
        data = {"suite": self.suite, "command": self.command, "commit": commit, "dirty": dirty, "smoke": self.smoke,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "minutes": round((time.time() - self.started) / 60, 1),
                "config_hash": hashlib.sha256(json.dumps(self.settings, sort_keys=True, default=str).encode()).hexdigest()[:16],
                "settings": self.settings, "machine": machine(), "summary": self.summary, "tables": self.tables}
        check_record(data)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.suite}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
        print(f"\nwrote {path}")
        return path


def check_record(data):
    """A record BENCHMARKS.md can be rendered from: its provenance (command, commit, machine, settings hash) and
    non-empty tables whose rows fit their columns; anything else is an error naming what is wrong."""
    suite = data.get("suite", "?")
    problems = [key for key in ("suite", "command", "commit", "date", "config_hash") if not data.get(key)]
    if not data.get("command", "").startswith(f"python -m tools.bench {suite}"):
        problems.append("command")
    if not isinstance(data.get("dirty"), bool) or not isinstance(data.get("smoke"), bool):
        problems.append("dirty/smoke")
    machine_ = data.get("machine") or {}
    if not machine_.get("cpu") or not machine_.get("cores", 0) >= 1:
        problems.append("machine")
    if not data.get("tables"):
        problems.append("tables")
    for table in data.get("tables") or []:
        if not table.get("rows") or any(len(row) != len(table["columns"]) for row in table["rows"]):
            problems.append(f"table {table.get('title')!r}")
    if problems:
        raise ValueError(f"bench record {suite}: bad or missing {', '.join(problems)}")
    return data


def _cell(value):
    if isinstance(value, float):
        return round(value, 4)
    return value


def render_table(table):
    lines = ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
    return "\n".join(lines)


@contextmanager
def scratch():
    with tempfile.TemporaryDirectory(prefix="tfmm-bench-") as folder:
        yield Path(folder)


def median_ms(function, repeats=20, warmup=3):
    """Median wall time of `function()` in milliseconds, after `warmup` calls (tracing, caches)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def timed(function):
    """(result, seconds) of one call."""
    started = time.time()
    result = function()
    return result, time.time() - started


def step_times(model, dataset, steps, warmup, fusion=False):
    """Per-step seconds of `model.fit` on `dataset` after `warmup` steps (compilation excluded); `fusion`:
    with train.xla_fusion, as the app's training session runs it."""
    import keras

    from tfmm.train.xla_fusion import xla_fusion

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.started)

    timer = Timer()
    with xla_fusion(fusion):
        model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], verbose=0, shuffle=False)
    return timer.times[warmup:]


def tflite_latency_ms(path, inputs, runs=200):
    """Median latency of one call of a `.tflite` file's `serving_default` in LiteRT."""
    from tfmm.export.tflite import interpreter

    runner = interpreter(path).get_signature_runner("serving_default")
    return median_ms(lambda: runner(**inputs), repeats=runs, warmup=10)


def dir_megabytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def app_config(app, overrides=(), scratch_dir=None):
    """An app's default config (its `apps/<app>.toml`) with `section.key=value` overrides, writing runs and
    exports into `scratch_dir`."""
    from tfmm.apps.runner import Runner
    from tfmm.config import load_config

    overrides = list(overrides)
    if scratch_dir is not None:
        overrides += [f'train.output_dir="{scratch_dir / "runs"}"', f'export.base_dir="{scratch_dir / "saved_models"}"']
    # The benches measure every TFLite file, also one the export gate would leave out (its parity says so).
    overrides += [f"export.parity.{q}=0.0" for q in ("float32", "dynamic_int8", "int8")]
    return load_config(app.config_class, ROOT / "apps" / f"{app.name}.toml", overrides), Runner(app)


SMOKE_SHAPES = ["data.shapes_config=tiny", "data.batch_size=16", "train.epochs=1", "train.steps_per_epoch=2"]
