"""Cameras: EpiGRAF's (yaw, pitch, radius, fov, look-at) <-> EG3D's 25 numbers <-> OpenCV/OpenGL matrices.

python examples/cameras_eg3d.py                      # uses the FFHQ defaults (fov 12, radius 1)
python examples/cameras_eg3d.py --model path/to/model_folder
"""

from __future__ import annotations

import argparse

import numpy as np

from epigraf_tools.camera import Camera, CameraError
from epigraf_tools.models import GeneratorConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="take fov/radius/resolution from this model's config")
    args = parser.parse_args()
    if args.model is not None:
        from epigraf_tools.checkpoints.loading import load_generator

        config = load_generator(args.model).config
    else:
        config = GeneratorConfig()
    np.set_printoptions(precision=4, suppress=True)

    cam = Camera.default(config).replace(yaw=np.radians(20), pitch=np.radians(80))
    print(cam)
    print("position (world):", cam.position)
    print("cam2world, OpenGL (the model's: x right, y up, looks down -z):\n", cam.cam2world("opengl"))
    print("world2cam, OpenCV (x right, y down, looks down +z):\n", cam.world2cam("opencv"))
    print("pixel intrinsics at the training resolution:\n", cam.intrinsics(config.img_resolution))

    label = cam.to_eg3d(config.img_resolution)  # this model's world axes
    print("EG3D label (16 cam2world + 9 normalised intrinsics):\n", label)
    print("back:", Camera.from_eg3d(label, config.img_resolution))
    eg3d_world = cam.to_eg3d(config.img_resolution, world="eg3d")  # rotated so the frontal view is +z
    print("same camera in EG3D's world axes: position", eg3d_world[[3, 7, 11]])

    for bad in ({"pitch": 80}, {"fov": 0.21}):  # degrees where radians are expected, and the reverse
        try:
            Camera(**bad)
        except CameraError as err:
            print("refused:", err)


if __name__ == "__main__":
    main()
