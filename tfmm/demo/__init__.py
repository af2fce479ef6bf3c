"""A web page people can click: every exported app on one page (Gradio), from `saved_models/` or a server.

    python -m tfmm.demo [--models saved_models] [--server HOST:8500] [--port 7860]
"""

import os

# The demo runs where nothing may phone home: no usage statistics from Gradio.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
