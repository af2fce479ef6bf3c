"""Converts captioned images (a caption folder or COCO JSON) into TFRecord shards that stream.

    python tools/prepare_data.py my_folder/ shards/ [--num-shards 16] [--strict]
    python -m tfmm.apps.retrieval train --set data.source='shards/data-*-of-*.tfrecord'

Unreadable images are reported by name and skipped (or stop the run with --strict).
"""

import argparse
import sys
from pathlib import Path

from tfmm.data import ImageCheck
from tfmm.data.readers import read_caption_folder, read_coco_captions, write_tfrecord_shards
from tfmm.errors import TfmmError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="folder with captions.jsonl/.csv, or a COCO-style captions .json")
    parser.add_argument("output_dir")
    parser.add_argument("--num-shards", type=int, default=8)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(argv)
    try:
        source = Path(args.source)
        examples = read_coco_captions(source) if source.suffix == ".json" else read_caption_folder(source)
        check = ImageCheck(strict=args.strict)
        pattern = write_tfrecord_shards(examples, args.output_dir, args.num_shards, image_check=check)
    except TfmmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(examples) - len(check.skipped)} examples to {pattern}")
    if check.summary():
        print(check.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
