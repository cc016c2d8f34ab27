"""The browser demo: a Gradio page over :mod:`epigraf_tools.demo_work` (``epigraf demo`` and ``app.py``).

Gradio is an optional extra (``pip install 'epigraf-tools[demo]'``) imported only when a page is
built, so ``import epigraf_tools.demo`` works without it. The page is built once per process by
``build_demo``; ``run_demo`` serves it (127.0.0.1 by default, no public share link unless asked).

What the page promises: long work shows a progress bar, requests wait in one queue (the renderer uses
every core, so one job at a time is the fastest for everyone), and a bad input or a failed job is a
message in the page, never a stack trace (the traceback of an unexpected failure goes to the
server's log instead).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import EpigrafError

INSTALL_HINT = "the demo needs Gradio: pip install 'epigraf-tools[demo]'"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
QUEUE_SIZE = 16  # requests waiting beyond this are refused with a message, so a crowd cannot pile up work
ORBIT_FRAMES = 24
MESH_RESOLUTION = 64
log = logging.getLogger(__name__)
# Renders of small models are a few dozen pixels: show them large and sharp rather than tiny or blurred.
CSS = """
#image img, #depth img, #normals img, #alpha img {
  image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain;
}
"""


def launch_options() -> dict[str, Any]:
    """Keyword arguments of ``gr.Blocks.launch`` that every way of serving the page uses (CLI and app.py)."""
    return {"css": CSS, "ssr_mode": False, "footer_links": []}


def require_gradio() -> Any:
    """Import Gradio (with its usage analytics off) or raise the one-line install hint."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise EpigrafError(INSTALL_HINT) from None
    return gradio


@contextlib.contextmanager
def page_errors() -> Iterator[None]:
    """Inside: every failure becomes ``gr.Error`` (a message in the page), never a traceback in the browser."""
    gr = require_gradio()
    try:
        yield
    except gr.Error:
        raise
    except EpigrafError as exc:
        raise gr.Error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    except Exception as exc:  # noqa: BLE001 - the page must get a message; the log gets the traceback
        log.exception("demo request failed")
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise gr.Error(f"unexpected error: {type(exc).__name__}: {first} (details in the server log)") from None


def _zoo_names() -> list[str]:
    from .checkpoints.zoo import zoo_entries

    return [entry.name for entry in zoo_entries()]


def build_demo(
    model: str | None = None,
    device: str = "auto",
    max_models: int = 2,
    work_dir: str | os.PathLike[str] | None = None,
    concurrency: int = 1,
    models: Sequence[str] | None = None,
) -> Any:
    """The demo page as a queued ``gr.Blocks`` (not yet serving); ``model`` is loaded now, so a bad one fails here.

    ``max_models`` bounds the models kept loaded; ``work_dir`` holds the newest requests' files (default:
    a fresh temporary folder); ``concurrency`` is how many jobs run at once. ``models`` (specs) are the
    only ones the page may load, checked on the server (default: any spec, the zoo listed); ``model``
    None then means the first of them.
    """
    gr = require_gradio()
    from .demo_work import (
        ModelCache,
        ViewRequest,
        WorkDirs,
        class_choices,
        extract_geometry,
        model_key,
        render_maps,
        render_orbit,
    )

    if models is not None and model is None and models:
        model = models[0]
    cache = ModelCache(device, capacity=max_models, allowed=models)
    first = cache.get(model)
    work = WorkDirs(work_dir)
    names = _zoo_names() if cache.allowed is None else list(cache.allowed)
    initial = model_key(model)
    if initial not in names:
        names.append(initial)
    hint = "A zoo name, a local folder or a Hub repo id[@revision]; Enter loads it."

    def default_resolution(G: Any) -> int:
        return min(G.config.img_resolution, 256)  # the model's own, but quick to render on a CPU

    def class_entries(G: Any) -> list[tuple[str, str]]:
        return [("from the seed", "")] + [(name, str(i)) for i, name in enumerate(class_choices(G))]

    def class_update(G: Any) -> Any:
        return gr.update(choices=class_entries(G), value="", visible=G.c_dim > 0)

    def request(seed: Any, psi: Any, cls: Any, yaw: Any, pitch: Any, res: Any) -> ViewRequest:
        if seed is None:
            raise EpigrafError("seed is empty: type a whole number such as 0 or 42")
        return ViewRequest(seed, psi, cls or None, yaw, pitch, None if res is None else int(res))

    def reporter(progress: Any) -> Any:
        return lambda fraction, what: progress(fraction, desc=what)

    def choose_model(spec: str, progress: Any = gr.Progress()) -> tuple[Any, Any, str]:
        with page_errors():
            progress(0.0, desc=f"loading {model_key(spec)}")
            G = cache.get(spec)
            loaded = f"Loaded **{model_key(spec)}**: {G.config.img_resolution}px, {G.c_dim} classes."
            return class_update(G), gr.update(value=default_resolution(G)), loaded

    def render(spec, seed, psi, cls, yaw, pitch, res, progress=gr.Progress()):  # noqa: ANN001, ANN202 - Gradio passes widget values
        with page_errors():
            G = cache.get(spec)
            maps = render_maps(G, request(seed, psi, cls, yaw, pitch, res), reporter(progress))
            shown = "" if maps.class_index is None else f", class {maps.class_index}"
            note = f"Seed {int(seed)}{shown}: yaw {yaw:g}, pitch {pitch:g} degrees, {maps.image.shape[0]}px."
            return maps.image, maps.depth, maps.normals, maps.alpha, note

    def orbit(spec, seed, psi, cls, yaw, pitch, res, frames, progress=gr.Progress()):  # noqa: ANN001, ANN202
        with page_errors():
            G = cache.get(spec)
            frames = int(frames) if frames is not None else ORBIT_FRAMES
            out = work.new("orbit")
            path = render_orbit(G, request(seed, psi, cls, yaw, pitch, res), out, frames, progress=reporter(progress))
            return str(path), f"Orbit of seed {int(seed)}: {frames} frames."

    def mesh(spec, seed, psi, cls, mesh_res, progress=gr.Progress()):  # noqa: ANN001, ANN202
        with page_errors():
            G = cache.get(spec)
            view = request(seed, psi, cls, 0.0, 90.0, None)
            res = int(mesh_res) if mesh_res is not None else MESH_RESOLUTION
            files = extract_geometry(G, view, work.new("mesh"), res, model_key(spec), reporter(progress))
            paths = [str(p) for p in files.downloads()]
            return paths[0], paths, f"Mesh of seed {int(seed)} from a {res}^3 density grid."

    with gr.Blocks(title="EpiGRAF demo", analytics_enabled=False, delete_cache=(1800, 3600)) as blocks:
        gr.Markdown("## EpiGRAF 3D GAN: pick a seed, turn the camera, extract the mesh")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                spec = gr.Dropdown(
                    names, value=initial, allow_custom_value=cache.allowed is None, label="Model", elem_id="model",
                    info=hint if cache.allowed is None else "The models this server offers.",
                )  # fmt: skip
                seed = gr.Number(0, precision=0, minimum=0, label="Seed (Enter renders)", elem_id="seed")
                psi = gr.Slider(0.0, 2.0, 1.0, step=0.05, label="Truncation psi (1 = off)", elem_id="psi")
                cls = gr.Dropdown(
                    class_entries(first), value="", label="Class", visible=first.c_dim > 0, elem_id="class"
                )
                yaw = gr.Slider(-180, 180, 0, step=1, label="Yaw (degrees)", elem_id="yaw")
                pitch = gr.Slider(0, 180, 90, step=1, label="Pitch (degrees from the top; 90 = level)", elem_id="pitch")
                res = gr.Slider(
                    16,
                    512,
                    default_resolution(first),
                    step=16,
                    label="Render resolution (pixels)",
                    elem_id="resolution",
                )
                render_btn = gr.Button("Render", variant="primary", elem_id="render")
                status = gr.Markdown("", elem_id="status")
            with gr.Column(scale=3):
                with gr.Row():
                    image = gr.Image(label="Image", elem_id="image", height=240, format="png")
                    depth = gr.Image(label="Depth (near = bright)", elem_id="depth", height=240, format="png")
                    normals = gr.Image(label="Normals (camera frame)", elem_id="normals", height=240, format="png")
                    alpha = gr.Image(label="Alpha", elem_id="alpha", height=240, format="png")
                with gr.Row():
                    with gr.Column():
                        frames = gr.Slider(8, 120, ORBIT_FRAMES, step=1, label="Orbit frames", elem_id="frames")
                        video_btn = gr.Button("Orbit video", elem_id="orbit")
                        video = gr.Video(label="Orbit", elem_id="video", height=300, autoplay=True, loop=True)
                    with gr.Column():
                        mesh_res = gr.Slider(32, 256, MESH_RESOLUTION, step=16, label="Mesh grid", elem_id="mesh_res")
                        mesh_btn = gr.Button("Extract mesh", elem_id="extract")
                        viewer = gr.Model3D(label="Mesh (drag to turn)", elem_id="mesh", height=300)
                downloads = gr.File(label="GLB, MRC and ChimeraX .cxc", file_count="multiple", elem_id="downloads")
        view_inputs = [spec, seed, psi, cls, yaw, pitch, res]
        view_outputs = [image, depth, normals, alpha, status]
        render_on = [render_btn.click, seed.submit, psi.release, cls.input, yaw.release, pitch.release, res.release]
        # One concurrency group for every job: `concurrency` jobs at a time in all, not per button.
        queue = {"concurrency_id": "epigraf", "concurrency_limit": concurrency}
        gr.on(render_on, render, view_inputs, view_outputs, **queue)
        blocks.load(render, view_inputs, view_outputs, **queue)
        spec.input(choose_model, [spec], [cls, res, status], **queue).success(
            render, view_inputs, view_outputs, **queue
        )
        video_btn.click(orbit, [*view_inputs, frames], [video, status], **queue)
        mesh_btn.click(mesh, [spec, seed, psi, cls, mesh_res], [viewer, downloads, status], **queue)
        _inversion_panel(gr, cache, work, spec, yaw, pitch, status, queue, reporter)
    blocks.queue(max_size=QUEUE_SIZE)
    blocks.epigraf_work = work  # so a caller (or a test) can remove the request files
    return blocks


def _inversion_panel(
    gr: Any, cache: Any, work: Any, spec: Any, yaw: Any, pitch: Any, status: Any, queue: dict[str, Any], reporter: Any
) -> None:
    """Photo upload -> ``demo_work.invert_photo`` (the files of ``epigraf invert``) with the sliders' camera."""
    from .demo_work import INVERT_STEPS, MAX_INVERT_STEPS, MAX_PTI_STEPS, invert_photo

    with gr.Accordion("Invert a photo (uses the yaw/pitch sliders as its camera)", open=False):
        with gr.Row():
            photo = gr.Image(label="Photo", type="filepath", elem_id="photo", height=240)
            with gr.Column():
                steps = gr.Slider(
                    10, MAX_INVERT_STEPS, INVERT_STEPS, step=10, label="Latent steps", elem_id="invert_steps"
                )
                pti = gr.Slider(0, MAX_PTI_STEPS, 0, step=10, label="Pivotal tuning steps", elem_id="pti_steps")
                button = gr.Button("Invert", elem_id="invert")
        result = gr.Image(label="Target | reconstruction | novel views", elem_id="inverted", format="png")
        files = gr.File(label="Latent (.npz): epigraf video --latent FILE", elem_id="latent_file")

    def run(model, image, yaw_deg, pitch_deg, n_steps, n_pti, progress=gr.Progress()):  # noqa: ANN001, ANN202
        with page_errors():
            G = cache.get(model)
            done = invert_photo(G, image, yaw_deg, pitch_deg, n_steps, n_pti, work.new("invert"), reporter(progress))
            return str(done.preview), str(done.latent), f"Inverted the photo: {done.psnr:.1f} dB on the given view."

    button.click(run, [spec, photo, yaw, pitch, steps, pti], [result, files, status], **queue)


def check_address(host: str, port: int | None) -> None:
    """Refuse a port outside [1, 65535] or an empty host before anything is loaded."""
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        raise EpigrafError(f"port must be an integer in [1, 65535], got {port!r}")
    if not isinstance(host, str) or not host.strip():
        raise EpigrafError(f"host must be an address such as 127.0.0.1, got {host!r}")


def run_demo(
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    device: str = "auto",
    block: bool = True,
    quiet: bool = False,
    models: Sequence[str] | None = None,
) -> tuple[Any, str]:
    """Build and serve the demo: ``epigraf demo``. Returns (the running ``gr.Blocks``, its local URL).

    ``port`` None takes the first free one from 7860; ``block`` False returns while it serves (close
    with ``blocks.close()``). A public ``share`` link needs Gradio's tunnel service (internet).
    ``models`` limits the page to these specs (see ``build_demo``).
    """
    check_address(host, port)
    blocks = build_demo(model, device, models=models)
    try:
        _app, url, _share_url = blocks.launch(
            server_name=host,
            server_port=port,
            share=share,
            prevent_thread_lock=True,
            quiet=quiet,
            **launch_options(),
        )
    except OSError as exc:
        raise EpigrafError(f"cannot serve on {host}:{port}: {exc}") from None
    if block:
        try:  # until Ctrl-C / SIGTERM, which reach the caller (the CLI exits 130 / 143 as for any command)
            while True:
                time.sleep(0.5)
        finally:
            blocks.close()
            blocks.epigraf_work.cleanup()
    return blocks, url


__all__ = [
    "build_demo",
    "check_address",
    "launch_options",
    "page_errors",
    "require_gradio",
    "run_demo",
]
