"""Converts captioned images (a caption folder or COCO JSON) into TFRecord shards that stream.

    python tools/prepare_data.py my_folder/ shards/ [--num-shards 16] [--strict]
    python -m tfmm.apps.retrieval train --set data.source='shards/data-*-of-*.tfrecord'

Explicit splits (a folder's train/validation/test files, a COCO or Karpathy JSON's `split` fields) are
written into the records and honoured when the shards are read; without them the suite's hash split
decides, the same one it uses for the source itself. Images TensorFlow cannot decode are reported
by name and skipped (or stop the run with --strict).
"""

import argparse
import sys
from pathlib import Path

from tfmm.data import ImageCheck
from tfmm.data.readers import read_caption_folder_with_splits, read_coco_captions, write_tfrecord_shards
from tfmm.errors import TfmmError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="folder with captions.jsonl/.csv or train/validation/test files, "
                                       "or a COCO-style (or Karpathy) captions .json")
    parser.add_argument("output_dir")
    parser.add_argument("--num-shards", type=int, default=8)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(argv)
    try:
        source = Path(args.source)
        examples = read_coco_captions(source) if source.suffix == ".json" else read_caption_folder_with_splits(source)
        check = ImageCheck(strict=args.strict)
        pattern = write_tfrecord_shards(examples, args.output_dir, args.num_shards, image_check=check)
    except TfmmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kept = [e for e in examples if check.reason(e["image_path"]) is None]
    counts = {}
    for example in kept:
        if example.get("split"):
            counts[example["split"]] = counts.get(example["split"], 0) + 1
    kept_splits = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
    print(f"wrote {len(kept)} examples to {pattern}" + (f" (splits kept: {kept_splits})" if kept_splits else ""))
    if check.summary():
        print(check.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
