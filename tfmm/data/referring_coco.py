"""RefCOCO-style data: one COCO instances JSON with the referring expressions beside the annotations.

    {"images": [{"id", "file_name", "height", "width"}],
     "annotations": [{"id", "image_id", "segmentation": polygons | RLE}],
     "refs": [{"image_id", "ann_id": int | [ints] | null, "split"?: "train" | "val" | "testA" | ...,
               "sentences": [{"sent": "the man on the left"} | "the man on the left", ...]}]}

(RefCOCO's own `refs(unc).p` holds the same fields; `json.dump` of its list as `"refs"` gives this file.) A ref
without `ann_id` (null or []) names nothing: an empty mask. Masks are decoded with `pycocotools` (polygons,
uncompressed and compressed RLE). A ref's `split` is honoured (val → validation, testA/testB/test → test);
without one the suite's hash split decides by image. Images are looked up next to the JSON or in its `images/`
folder. A bad ref or annotation is named (`refs[i]`) and skipped.
"""

from pathlib import Path

import numpy as np

from tfmm.data.readers import read_json_file
from tfmm.errors import TfmmError

SPLIT_NAMES = {"train": "train", "val": "validation", "validation": "validation", "test": "test", "testA": "test",
               "testB": "test"}


def _annotation_mask(annotation, height, width):
    from pycocotools import mask as coco_mask

    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):  # polygons
        if not segmentation or any(len(p) < 6 for p in segmentation):
            raise ValueError("a polygon needs at least 3 points")
        rles = coco_mask.frPyObjects(segmentation, height, width)
        rle = coco_mask.merge(rles)
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        rle = coco_mask.frPyObjects(segmentation, height, width) if isinstance(segmentation["counts"], list) \
            else segmentation
    else:
        raise ValueError("segmentation is neither polygons nor RLE")
    mask = coco_mask.decode(rle)
    if mask.shape[:2] != (height, width):
        raise ValueError(f"RLE is {mask.shape[1]}×{mask.shape[0]} but the image is {width}×{height}")
    return mask.astype(np.uint8)


def _sentences(ref):
    values = ref.get("sentences")
    if not isinstance(values, list):
        raise ValueError("missing field 'sentences'")
    texts = [s.get("sent", s.get("raw")) if isinstance(s, dict) else s for s in values]
    texts = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("no non-empty sentence")
    return texts


def read_coco_refs(path, checks, image_size):
    """Examples `{"image_path", "text", "scene", "split" (or None), "mask" uint8 (image_size, image_size)}`."""
    from tfmm.data.referring_sources import resize_mask  # one resize rule for every mask source

    path = Path(path)
    data = read_json_file(path, "RefCOCO-style file")
    for field in ("images", "annotations", "refs"):
        if not isinstance(data, dict) or not isinstance(data.get(field), list):
            raise TfmmError(f"{path}: missing field {field!r} (a COCO instances JSON with a 'refs' list)")
    folder = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    images = {i.get("id"): i for i in data["images"] if isinstance(i, dict)}
    annotations = {a.get("id"): a for a in data["annotations"] if isinstance(a, dict)}
    examples = []
    for index, ref in enumerate(data["refs"]):
        where = f"{path}: refs[{index}]"
        try:
            if not isinstance(ref, dict):
                raise ValueError("not an object")
            image = images.get(ref.get("image_id"))
            if image is None:
                raise ValueError(f"unknown image_id {ref.get('image_id')!r}")
            image_path = folder / str(image.get("file_name"))
            reason = checks.images.reason(image_path)
            if reason:
                raise ValueError(f"{image_path}: {reason}")
            ids = ref.get("ann_id")
            ids = [] if ids is None else ids if isinstance(ids, list) else [ids]
            height, width = int(image["height"]), int(image["width"])
            mask = np.zeros((height, width), np.uint8)
            for ann_id in ids:
                if ann_id not in annotations or annotations[ann_id].get("image_id") != image["id"]:
                    raise ValueError(f"ann_id {ann_id!r} is not an annotation of image {image['id']!r}")
                mask |= _annotation_mask(annotations[ann_id], height, width)
            split = ref.get("split")
            if split is not None and split not in SPLIT_NAMES:
                raise ValueError(f"split {split!r} is not one of {', '.join(SPLIT_NAMES)}")
            texts = _sentences(ref)
        except (ValueError, KeyError, TypeError) as error:
            checks.rows.reject(where, str(error).strip("'"))
            continue
        small = resize_mask(mask, image_size).numpy()
        examples += [{"image_path": str(image_path), "text": text, "scene": str(image["file_name"]),
                      "split": SPLIT_NAMES.get(split), "mask": small} for text in texts]
    return examples
