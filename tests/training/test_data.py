"""Dataset loading: official layout, resize, x-flip with yaw mirroring, and clear errors."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest
from training_support import write_dataset

from epigraf_tools.errors import EpigrafError
from epigraf_tools.training.data import DatasetError, ImageDataset, InfiniteOrder, dataset_info


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_loads_official_layout(tmp_path, kind):
    path = tmp_path / ("d.zip" if kind == "zip" else "d")
    if kind == "folder":
        path.mkdir()
    write_dataset(path, n=6, size=16, labels=3)
    ds = ImageDataset(path)
    assert len(ds) == 6 and ds.resolution == 16 and ds.c_dim == 3
    item = ds[4]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == np.uint8
    assert item["label"].tolist() == [0, 1, 0]  # label 4 % 3 = 1, one-hot
    assert item["camera_angles"][0] == pytest.approx(0.3 * math.sin(4))


def test_resize_and_xflip_mirrors_yaw(tmp_path):
    write_dataset(tmp_path / "d.zip", n=3, size=32)
    ds = ImageDataset(tmp_path / "d.zip", resolution=16, xflip=True)
    assert len(ds) == 6
    a, b = ds[1], ds[4]  # 4 = mirrored copy of 1
    assert a["image"].shape == (3, 16, 16)
    assert np.array_equal(b["image"], a["image"][:, :, ::-1])
    assert b["camera_angles"][0] == -a["camera_angles"][0]
    assert b["camera_angles"][1] == a["camera_angles"][1]


def test_missing_poses_error(tmp_path):
    write_dataset(tmp_path / "d.zip", n=4, size=16, drop_pose=2)
    with pytest.raises(DatasetError, match=r"1 of 4 images have no camera_angles.*img00000002"):
        ImageDataset(tmp_path / "d.zip")
    write_dataset(tmp_path / "e.zip", n=4, size=16, poses=False)
    with pytest.raises(DatasetError, match="no camera poses"):
        ImageDataset(tmp_path / "e.zip")
    ds = ImageDataset(tmp_path / "e.zip", require_poses=False)  # a camera distribution will be used
    assert not ds.has_poses and (ds.camera_angles == 0).all()


def test_wrong_image_sizes_error(tmp_path):
    write_dataset(tmp_path / "d.zip", n=4, size=16, sizes={3: 24})
    with pytest.raises(DatasetError, match=r"img00000003.png is 24x24 but .* is 16x16"):
        ImageDataset(tmp_path / "d.zip")


def test_non_square_error(tmp_path):
    from PIL import Image

    folder = tmp_path / "d"
    folder.mkdir()
    Image.new("RGB", (16, 8)).save(folder / "a.png")
    with pytest.raises(DatasetError, match="16x8: training images must be square"):
        ImageDataset(folder, require_poses=False)


def test_empty_zip_and_bad_paths(tmp_path):
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    with pytest.raises(DatasetError, match="no images"):
        ImageDataset(tmp_path / "empty.zip")
    with pytest.raises(DatasetError, match="does not exist"):
        ImageDataset(tmp_path / "nope.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a valid zip"):
        ImageDataset(tmp_path / "junk.zip")
    assert issubclass(DatasetError, EpigrafError)  # CLI exit code 2


def test_bad_json_and_uncentred_warning(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    write_dataset(folder, n=2, size=16)
    (folder / "dataset.json").write_text("{broken")
    with pytest.raises(DatasetError, match="not valid JSON"):
        ImageDataset(folder)
    names = ["00000/img00000000.png", "00000/img00000001.png"]
    (folder / "dataset.json").write_text(json.dumps({"camera_angles": {n: [1.0, 0.5, 0.0] for n in names}}))
    with pytest.warns(UserWarning, match="not zero-centred"):
        ImageDataset(folder)


def test_dataset_info(tmp_path):
    write_dataset(tmp_path / "d.zip", n=5, size=16, labels=2)
    info = dataset_info(tmp_path / "d.zip")
    assert info["num_images"] == 5 and info["resolution"] == 16 and info["c_dim"] == 2
    assert info["class_counts"] == [3, 2]
    assert info["poses"]["count"] == 5 and info["pose_warning"] is None


def test_infinite_order_is_a_function_of_position():
    order = InfiniteOrder(5, seed=3)
    first = order.take(0, 12)
    assert sorted(first[:5].tolist()) == list(range(5)) and sorted(first[5:10].tolist()) == list(range(5))
    assert np.array_equal(InfiniteOrder(5, seed=3).take(7, 5), first[7:12])
    assert not np.array_equal(InfiniteOrder(5, seed=4).take(0, 10), first[:10])
