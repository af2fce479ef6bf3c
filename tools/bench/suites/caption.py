"""caption: both decoders on one budget — BLEU-4, METEOR, CIDEr-D and object correctness by decoding method, and
captions per second in Keras, the SavedModel and the TFLite on-device loop."""

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from tfmm.apps.caption import Caption
from tfmm.data import DataChecks
from tfmm.export.caption_on_device import OnDeviceCaptioner
from tools.bench.harness import SMOKE_SHAPES, app_config, scratch, timed


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=0, help="epochs per decoder (0: the config's)")
    parser.add_argument("--decoders", nargs="+", default=["gru_attention", "transformer"])


def per_second(function, items, batch=64, repeats=3):
    """Median over timed passes (after one warm-up batch) of items per second."""
    function(items[:batch])
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(items), batch):
            function(items[start:start + batch])
        rates.append(len(items) / (time.perf_counter() - started))
    return statistics.median(rates)


def run(args, report):
    smoke = args.smoke
    quality, speed = [], []
    with scratch() as folder:
        for decoder in (["transformer"] if smoke else args.decoders):
            overrides = [f"model.decoder={decoder}", 'export.tflite_quantization=["float32"]']
            overrides += (SMOKE_SHAPES + ["model.image_encoder.size=tiny"]) if smoke else (
                [f"train.epochs={args.epochs}"] if args.epochs else [])
            config, runner = app_config(Caption(), overrides, folder)
            keras.backend.clear_session()
            task, seconds = timed(lambda: runner.train(config))
            for width in ((1,) if smoke else (1, 3, 5)):
                m = runner.app.evaluate(task, config, "test", beam_width=width)
                quality.append([decoder, round(seconds / 60, 1), "greedy" if width == 1 else f"beam {width}", m["bleu_4"],
                                m.get("meteor", "no Java"), m["cider_d"], m.get("object_correctness"), m.get("top_object_mistakes")])
            test = runner.app.load_split(config, "test", DataChecks())
            images = np.stack([e["image"] for e in test.take(16 if smoke else 256).as_numpy_iterator()])
            exported = runner.export(task, config, f"caption_{decoder}")
            served = tf.saved_model.load(str(exported))
            pngs = np.array([tf.io.encode_png(image).numpy() for image in images], dtype=object)
            on_device = OnDeviceCaptioner(exported / "tflite", "float32")
            floats = images.astype(np.float32) / 255
            row = [decoder]
            for width in ((1,) if smoke else (1, 3)):
                row.append(round(per_second(lambda x: task.caption_details(x, width), images)))
                row.append(round(per_second(lambda x: served.signatures["caption_beam"](
                    image_bytes=tf.constant(x), beam_width=tf.constant(width)), pngs)))
                row.append(round(per_second(lambda x: [on_device.caption(i, beam_width=width) for i in x],
                                            floats[:8 if smoke else 64], batch=16, repeats=1), 1))
            speed.append(row)
    report.table("Caption quality on the shapes test split", ["decoder", "train (min)", "decoding", "BLEU-4", "METEOR",
                 "CIDEr-D", "object correctness", "top mistakes"], quality)
    columns = ["decoder", "Keras greedy", "SavedModel greedy", "TFLite greedy", "Keras beam 3", "SavedModel beam 3",
               "TFLite beam 3"]
    report.table("Captions per second (Keras and SavedModel in batches of 64, TFLite one image at a time)",
                 columns[:len(speed[0])], speed)
