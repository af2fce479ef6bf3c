import io

import numpy as np
import pytest
from PIL import Image


def png(image):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def encode_png():
    return png
