"""Text-guided editing by words: a referring segmenter finds the region ("the red circle"), a text-to-image
generator redraws the image tokens under it for a new prompt and keeps every other token."""

from tfmm.errors import TfmmError


def edit_where(generator, segmenter, image, where, prompt, candidates=8, seed=0, sampling=None, guidance_scale=None):
    """`image` (one raw image: encoded bytes or uint8 (H, W, 3)) with the pixels `where` names redrawn for
    `prompt`. Both models see the whole image, so the segmenter's mask (at its resolution) marks the same place
    in the generator's token grid: every cell with a marked pixel is redrawn. Returns (uint8 image, info) as
    `TextToImageGenerator.edit`, with the segmenter's `mask` added; a `where` that names nothing in the image is
    an error naming it."""
    if not callable(getattr(segmenter, "segment", None)):
        raise TfmmError(f"the segmenter is a {type(segmenter).__name__}, not a referring segmenter (segment app)")
    mask = segmenter.segment([image], [where])[0]
    if not mask.any():
        raise TfmmError(f"--where {where!r} names nothing in this image (the segmenter marks no pixel)")
    edited, info = generator.edit(image, generator.mask_cells(mask), prompt, candidates, seed, sampling,
                                  guidance_scale)
    return edited, {**info, "mask": mask}
