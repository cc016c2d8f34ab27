"""The browser demo as a Hugging Face Space (``sdk: gradio``, ``app_file: app.py``); see docs/demo.md.

The same page as ``epigraf demo``. Settings come from the environment, as Spaces set them:
EPIGRAF_DEMO_MODEL (a zoo name, folder or Hub repo id; default: the embedded model),
EPIGRAF_DEMO_DEVICE (default auto) and EPIGRAF_DEMO_MODELS (comma-separated specs: the only models
visitors may pick; default: any spec they type). The address is Gradio's own: 127.0.0.1 unless
GRADIO_SERVER_NAME says otherwise (Spaces set it to 0.0.0.0 inside their container).
"""

from __future__ import annotations

import os

from epigraf_tools.demo import build_demo, launch_options

listed = [spec.strip() for spec in os.environ.get("EPIGRAF_DEMO_MODELS", "").split(",") if spec.strip()]
demo = build_demo(
    os.environ.get("EPIGRAF_DEMO_MODEL") or None,
    device=os.environ.get("EPIGRAF_DEMO_DEVICE", "auto"),
    models=listed or None,
)

if __name__ == "__main__":
    demo.launch(**launch_options())
