# ruff: noqa: E501  (the model card template has long Markdown table rows)
"""Package a training snapshot as the embedded default model and write its model card.

    python tools/package_default_model.py --snapshot runs/default/snapshot-000033000 \
        --train-config runs/default_train.yaml

Copies config.json + model.safetensors of the snapshot into epigraf_tools/assets/default/ (adding
the dataset's class names), copies the training YAML beside them, measures the geometry that
tests/toolkit/test_default_model.py checks and writes README.md (the model card) with the numbers.
Maintainers run it after (re)training the default model; users never need it.
"""

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch

from epigraf_tools import Truncation, extract_density, load_generator, ws_from_seeds
from epigraf_tools.mesh import build_mesh

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--snapshot", type=Path, required=True, help="RUN_DIR/snapshot-NNNNNNNNN folder")
parser.add_argument("--train-config", type=Path, required=True, help="the YAML the run was trained with")
parser.add_argument(
    "--history",
    default="The run was trained in one go.",
    help="Markdown sentence(s) on how the run was trained (stops, resumes, process counts)",
)
parser.add_argument(
    "--limitations",
    default="Samples are centred, shaded, 3D-consistent objects of the right size.",
    help="Markdown paragraph for the card's Limitations section (what the samples still get wrong)",
)
parser.add_argument("--dest", type=Path, default=Path(__file__).resolve().parents[1] / "epigraf_tools/assets/default")
args = parser.parse_args()
torch.set_num_threads(1)

snap = args.snapshot
dest = args.dest
dest.mkdir(parents=True, exist_ok=True)
cfg = json.loads((snap / "config.json").read_text())
if cfg.get("c_dim", 0):
    cfg["class_names"] = ["sphere", "box", "torus", "capsule"]
cfg["name"] = "epigraf-tools default (shapes64)"
(dest / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
shutil.copy(snap / "model.safetensors", dest / "model.safetensors")
shutil.copy(args.train_config, dest / "train_config.yaml")

kimg = int(snap.name.split("-")[1]) / 1000
# A run stopped between snapshots logs some ticks twice (before the stop and after the resume): keep the last.
recs = list({r["step"]: r for r in map(json.loads, open(snap.parent / "log.jsonl"))}.values())
rec = min(recs, key=lambda r: abs(r["kimg"] - kimg))
steps = rec["step"]
# time_s restarts at every resume, so the training time is the sum of the per-tick times.
wall = sum(r["sec_per_tick"] for r in recs if r["kimg"] <= rec["kimg"])


G = load_generator(str(dest))
conditional = G.c_dim > 0
# (row label, class index): every class of a conditional model, or the seed's own draw.
conditions = [(name, ci) for ci, name in enumerate(cfg["class_names"])] if conditional else [("any", None)]
cs = G.config.cube_scale


def sample_ws(seed: int, class_index: int | None, psi: float) -> torch.Tensor:
    return ws_from_seeds(G, [seed], Truncation(psi), class_index=class_index)[0]


def sample_mesh(ws: torch.Tensor):
    with torch.no_grad():
        V = extract_density(G, G.planes(ws), resolution=64, value="sigma")
    return build_mesh(V, (2 * cs / 63,) * 3, (-cs,) * 3, level=10.0, keep_largest=True)


def hue_of(rgb: np.ndarray) -> float:
    """Hue angle (radians) of an RGB colour, from the colour's projection on the chroma plane."""
    r, g, b = rgb
    return math.atan2(math.sqrt(3) * (g - b), 2 * r - g - b)


rows = []
for name, ci in conditions:
    for seed in (0, 1) if conditional else range(8):
        mesh, rep = sample_mesh(sample_ws(seed, ci, 0.7))
        r = np.linalg.norm(mesh.vertices, axis=1).max()
        eq = (3 * abs(mesh.volume) / (4 * math.pi)) ** (1 / 3)
        genus = (2 - mesh.euler_number) // 2
        rows.append(f"| {name} | {seed} | {r:.3f} | {eq:.3f} | {genus} | {rep.watertight} |")
print("\n".join(rows))

# Diversity over n_div seeds at psi 1: how many meshes have a hole (genus 1: a torus), and how spread the
# object hues are (mean resultant length of the hue angles: 1 = one hue, sqrt(pi / 4n) for n uniform hues).
div_rows = []
n_div = 16 if conditional else 32
for name, ci in conditions:
    holes = 0
    hues = []
    for seed in range(n_div):
        ws = sample_ws(seed, ci, 1.0)
        mesh, _ = sample_mesh(ws)
        holes += int((2 - mesh.euler_number) // 2 >= 1)
        with torch.no_grad():
            out = G.render(ws, torch.tensor([[0.0, math.pi / 2, 0.0]]), resolution=48, deterministic=True)
        alpha = out["alpha"][0, 0] > 0.5
        if alpha.any():
            rgb = (out["image"][0].clamp(-1, 1) * 0.5 + 0.5)[:, alpha].mean(dim=1).numpy()
            hues.append(hue_of(rgb))
    R = abs(np.mean(np.exp(1j * np.array(hues)))) if hues else float("nan")
    div_rows.append(f"| {name} | {n_div} | {holes} | {R:.2f} |")
print("\n".join(div_rows))
kind = "class-conditional" if conditional else "unconditional"
classes_row = (
    "`sphere`, `box`, `torus`, `capsule` (`--class NAME` or index)"
    if conditional
    else "none: the latent picks the shape family (sphere, box, torus or capsule), its size, colour and pose"
)
class_note = (
    " The `class_names` entry of `config.json` was added when packaging (the run started before training"
    " copied them from `dataset.json`; now it does)."
    if conditional
    else ""
)
card = (
    f"""# epigraf-tools default model: `shapes64`

A small {kind} EpiGRAF trained with this repository's own code, on CPU, on the procedural
shapes dataset of `epigraf dataset synth`. It ships inside the package so that every command works
out of the box and offline; it is a demonstration model, not a research result.

| | |
|---|---|
| classes | {classes_row} |
| images | 64x64, white background (`white_back`), trained on 32x32 patches (min scale 0.5, Beta annealing over 20 kimg) |
| generator | z/w 128, mapping depth 2, tri-plane 32^2 x 16 features (channels 4096/64), MLP 16-32-4, 12 + 12 ray steps |
| discriminator | patch-aware StyleGAN2 ResNet D, channels 2048/64, hyper-modulation on |
| camera | radius 1, fov 30 degrees, near/far 0.7/1.3, tri-plane cube +-0.35; frontal view yaw 0, pitch pi/2 |
| training | {kimg:g} kimg ({steps} steps of batch 8), {wall / 60:.0f} min of training steps on a 2-core CPU (one torch thread per process), seed 0 |
| parameters | G {sum(p.numel() for p in G.parameters()):,} (`model.safetensors`, {(dest / "model.safetensors").stat().st_size / 1e6:.1f} MB) |
| suggested iso level | sigma = 10 (`epigraf export-volume --value sigma`); raw 25 - density_shift is the model default |
| licence | MIT, like epigraf-tools; the data is synthetic |

## Reproduce

```bash
epigraf dataset synth data/shapes64.zip --num-images 3000 --resolution 64 --seed 0
OMP_NUM_THREADS=1 epigraf train --data data/shapes64.zip --config epigraf_tools/assets/default/train_config.yaml \\
    --kimg {kimg:g} --out runs/default --device cpu --seed 0
# the model is runs/default/snapshot-{int(kimg * 1000):09d}/ (config.json + model.safetensors)
```

`train_config.yaml` beside this card is the exact configuration. {args.history} Resume is exact
(tested), and a step of 2 gloo processes matches a step of 1 process to 1e-5 (tested). Over thousands
of GAN steps such rounding differences grow, so the single command above gives a model of the same
recipe and, we expect, quality, not bit-identical weights. No schedule depends on the total `--kimg`;
random draws are seeded per step and chunk (we have not re-run the whole training).{class_note}

## Measured

Losses at {rec["kimg"]:g} kimg: G {rec["Loss/G/loss"]:.3f}, D {rec["Loss/D/loss"]:.3f}, R1 {rec["Loss/D/r1_penalty"]:.3f}.
FID was not measured: this machine has no Inception weights (`epigraf fid` says which file to add).

Geometry (what `tests/toolkit/test_default_model.py` checks): meshes of 64^3 sigma volumes at
level 10, largest component, truncation 0.7. The dataset's shapes have a bounding radius in
[0.12, 0.22] and an equivalent-sphere radius in [0.065, 0.22].

| class | seed | bounding radius | equivalent radius | genus | watertight |
|---|---|---|---|---|---|
"""
    + "\n".join(rows)
    + f"""

Diversity ({n_div} seeds per row, truncation 1): meshes with a hole (genus >= 1; only tori have one,
a quarter of the dataset) and the hue concentration of the objects (mean resultant length of the hue
angles of the frontal renders: 1 = a single hue; {n_div} uniform hues, as in the dataset, give {math.sqrt(math.pi / (4 * n_div)):.2f} on average).

| class | seeds | with a hole | hue concentration |
|---|---|---|---|
"""
    + "\n".join(div_rows)
    + f"""

## Limitations

Trained for {wall / 3600:.1f} hours on a two-core CPU, not days on GPUs. {args.limitations}
Training longer (`epigraf train --resume runs/default --kimg N`) is the obvious next step.
"""
)
(dest / "README.md").write_text(card)
print(f"wrote {dest}")
