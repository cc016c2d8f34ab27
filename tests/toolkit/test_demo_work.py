"""epigraf_tools/demo_work.py: what the demo page renders and writes, tested without Gradio or a browser."""

from __future__ import annotations

import math

import numpy as np
import pytest

from epigraf_tools.camera import Camera
from epigraf_tools.demo_work import (
    ModelCache,
    ViewRequest,
    WorkDirs,
    class_choices,
    extract_geometry,
    model_key,
    render_maps,
    render_orbit,
)
from epigraf_tools.errors import EpigrafError
from epigraf_tools.images import alpha_to_uint8
from epigraf_tools.rendering import RenderSettings
from epigraf_tools.sampling import generate_samples

from support import make_tiny_generator


@pytest.fixture(scope="module")
def G():
    return make_tiny_generator(0)


def test_maps_are_the_pictures_of_epigraf_sample(G):
    maps = render_maps(G, ViewRequest(seed=3, truncation=0.7, yaw=20, pitch=80, resolution=24))
    camera = Camera.from_degrees(20, 80, radius=G.config.radius, fov=G.config.fov)
    from epigraf_tools.latents import Truncation

    (sample,) = generate_samples(G, [3], [camera], Truncation(0.7), settings=RenderSettings(24), normals=True)
    np.testing.assert_array_equal(maps.image, sample.image)  # the same pipeline and ray noise
    np.testing.assert_array_equal(maps.alpha[..., 0], alpha_to_uint8(sample.alpha))
    for picture in (maps.image, maps.depth, maps.normals, maps.alpha):
        assert picture.shape == (24, 24, 3) and picture.dtype == np.uint8
    assert maps.depth.std() > 0 and maps.normals.std() > 0


def test_a_seed_typed_as_a_whole_float_is_accepted_and_the_model_resolution_is_the_default(G):
    assert render_maps(G, ViewRequest(seed=2.0)).image.shape == (G.config.img_resolution,) * 2 + (3,)


@pytest.mark.parametrize(
    "request_, needle",
    [
        (ViewRequest(seed=-1), "seed"),
        (ViewRequest(seed=1.5), "seed"),
        (ViewRequest(seed=0, resolution=4096), "resolution"),
        (ViewRequest(seed=0, pitch=200), "pitch"),
        (ViewRequest(seed=0, truncation=3.0), "psi"),
        (ViewRequest(seed=0, class_="2"), "unconditional"),
    ],
)
def test_bad_controls_are_one_error_naming_them(G, request_, needle):
    with pytest.raises(EpigrafError, match=needle):
        request_.checked(G)


def test_class_choices_are_names_where_the_model_has_them():
    assert class_choices(make_tiny_generator(0)) == []
    assert class_choices(make_tiny_generator(0, c_dim=3)) == ["0", "1", "2"]
    G = make_tiny_generator(0, c_dim=3, class_names=["cat", "dog", "owl"])
    assert class_choices(G) == ["cat", "dog", "owl"]
    assert ViewRequest(seed=0, class_="dog").checked(G)[2] == 1


def test_the_model_cache_keeps_the_newest_models_only(tmp_path):
    for name, seed in (("a", 0), ("b", 1)):
        make_tiny_generator(seed).save_pretrained(tmp_path / name)
    cache = ModelCache("cpu", capacity=1)
    a = cache.get(str(tmp_path / "a"))
    assert cache.get(f" {tmp_path / 'a'} ") is a  # the same spec, however it is typed, loads once
    cache.get(str(tmp_path / "b"))
    assert cache.loaded() == [str(tmp_path / "b")]
    assert model_key("") == model_key(None) == "default"
    with pytest.raises(EpigrafError, match="capacity"):
        ModelCache("cpu", capacity=0)


def test_an_allow_list_is_checked_before_anything_loads(tmp_path):
    make_tiny_generator(0).save_pretrained(tmp_path / "a")
    cache = ModelCache("cpu", allowed=[str(tmp_path / "a")])
    assert cache.get(str(tmp_path / "a")) is not None
    with pytest.raises(EpigrafError, match="serves only these models"):
        cache.get("default")  # exists, but not listed
    assert cache.loaded() == [str(tmp_path / "a")]
    with pytest.raises(EpigrafError, match="allowed is empty"):
        ModelCache("cpu", allowed=[])


def test_work_dirs_keep_the_newest_requests(tmp_path):
    work = WorkDirs(tmp_path / "work", keep=2)
    made = [work.new("x") for _ in range(3)]
    assert [p.is_dir() for p in made] == [False, True, True]
    work.cleanup()
    assert not (tmp_path / "work").exists()


def test_the_orbit_is_a_video_of_the_requested_frames(G, tmp_path):
    from epigraf_tools.video import count_frames

    seen = []
    path = render_orbit(
        G, ViewRequest(seed=1, resolution=16), tmp_path, frames=4, progress=lambda f, _w: seen.append(f)
    )
    assert path.name == "seed0001.mp4" and count_frames(path) == 4
    assert seen[-1] == pytest.approx(1.0)
    with pytest.raises(EpigrafError, match="frames"):
        render_orbit(G, ViewRequest(seed=1), tmp_path, frames=10_000)


def test_geometry_is_a_glb_beside_its_mrc_and_chimerax_script(G, tmp_path):
    import trimesh

    from epigraf_tools.mrc import read_mrc

    seen = []
    files = extract_geometry(G, ViewRequest(seed=2), tmp_path, resolution=32, progress=lambda f, w: seen.append(f))
    assert [p.name for p in files.downloads()] == ["seed0002.glb", "seed0002.mrc", "seed0002.cxc"]
    assert files.glb.read_bytes()[:4] == b"glTF"
    mesh = trimesh.load(files.glb, force="mesh")
    assert len(mesh.faces) > 0 and mesh.visual.kind == "vertex"  # coloured from the field
    assert read_mrc(files.mrc).data.shape == (32, 32, 32)
    assert "seed0002.mrc" in files.cxc.read_text()
    assert seen == sorted(seen) and math.isclose(seen[-1], 1.0)
    with pytest.raises(EpigrafError, match="mesh resolution"):
        extract_geometry(G, ViewRequest(seed=2), tmp_path, resolution=8)


def test_invert_photo_writes_what_epigraf_invert_writes(G, tmp_path):
    from PIL import Image

    from epigraf_tools.demo_work import invert_photo
    from epigraf_tools.latent_files import load_latent
    from epigraf_tools.latents import Truncation

    camera = Camera.from_degrees(20.0, 80.0, radius=G.config.radius, fov=G.config.fov)
    (target,) = generate_samples(G, [3], [camera], Truncation(0.7), None, RenderSettings(deterministic=True))
    photo = tmp_path / "photo.png"
    Image.fromarray(target.image).save(photo)
    done = invert_photo(G, photo, 20.0, 80.0, 30, 0, tmp_path / "out")
    assert done.preview.is_file() and done.latent.is_file()
    stored = load_latent(done.latent, G)
    assert stored.camera.yaw_degrees == pytest.approx(20.0) and stored.camera.pitch_degrees == pytest.approx(80.0)
    assert math.isfinite(done.psnr) and done.psnr > 10  # 30 W steps on a tiny model: far from exact, not garbage
    with pytest.raises(EpigrafError, match="upload a photo"):
        invert_photo(G, None, 0.0, 90.0, 30, 0, tmp_path / "none")
    with pytest.raises(EpigrafError, match="steps"):
        invert_photo(G, photo, 0.0, 90.0, 0, 0, tmp_path / "bad")
