import random
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from replicate.results import ROOT, TABLES

pytest_plugins = ["checkout_guard"]  # the session fails if a test wrote into the checkout

SHAPES = ("disc", "square", "stripes", "gradient")  # the classes of the generated image folder
SHAPE_IMAGES = {"train": 256, "test": 32}  # per class: 32 smoke steps of batch 32, 128 evaluation images


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def shape_image(shape: str, key: str) -> Image.Image:
    """A 32 px RGB image of one shape class, its colours, position and size drawn from a generator seeded by key:
    flat regions and sharp edges, so that a small VQ-VAE's reconstruction loss falls within a few steps."""
    rng = random.Random(f"{shape}/{key}")
    background = tuple(rng.randrange(0, 96) for _ in range(3))
    colour = tuple(rng.randrange(128, 256) for _ in range(3))
    image = Image.new("RGB", (32, 32), background)
    pen = ImageDraw.Draw(image)
    x, y, r = rng.randint(8, 24), rng.randint(8, 24), rng.randint(4, 8)
    if shape == "disc":
        pen.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    elif shape == "square":
        pen.rectangle((x - r, y - r, x + r, y + r), fill=colour)
    elif shape == "stripes":
        period = rng.randint(4, 8)
        for left in range(rng.randrange(period), 32, period):
            pen.rectangle((left, 0, left + period // 2 - 1, 31), fill=colour)
    else:  # a vertical ramp from the background colour to the shape colour
        ramp = np.linspace(0, 1, 32)[:, None, None]
        pixels = np.asarray(background) * (1 - ramp) + np.asarray(colour) * ramp
        image = Image.fromarray(np.broadcast_to(pixels, (32, 32, 3)).round().astype(np.uint8))
    return image


def write_shape_images(root: Path, extension: str, counts: dict[str, int]) -> Path:
    """root/<split>/<shape>/<index>.<extension>: the layout of the CIFAR-10 JPEG copy and of the "folder" dataset."""
    for split, count in counts.items():
        for shape in SHAPES:
            folder = root / split / shape
            folder.mkdir(parents=True)
            for index in range(count):
                shape_image(shape, f"{split}/{index}").save(folder / f"{index:04d}.{extension}")
    return root


@pytest.fixture(scope="session")
def shape_folder(tmp_path_factory) -> Path:
    """A generated image folder for the "folder" dataset (data_root): 4 shape classes of 32 px PNG images,
    256 per class in train/ and 32 in test/, the same in every checkout (no download, no shared archive)."""
    return write_shape_images(tmp_path_factory.mktemp("shapes"), "png", SHAPE_IMAGES)


@pytest.fixture(scope="session")
def shape_jpeg_archive(tmp_path_factory) -> Path:
    """A small .tar.gz in the layout of the CIFAR-10 JPEG copy (train/<class>/*.jpg, test/<class>/*.jpg at the top
    level): 4 shape classes, 8 training and 2 test images each."""
    source = write_shape_images(tmp_path_factory.mktemp("shapes-jpeg"), "jpg", {"train": 8, "test": 2})
    archive = tmp_path_factory.mktemp("archive") / "shapes-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in SHAPE_IMAGES:
            tar.add(source / split, arcname=split)
    return archive


def two_rank_parameters(script: str, folder: Path) -> tuple[dict, dict]:
    """Run `script` (it saves folder/rank<r>.pt) under two-process torchrun, one thread each; both ranks' tensors."""
    import os
    import subprocess
    import sys

    path = folder / "ddp_script.py"
    path.write_text(script)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(path), str(folder)]
    completed = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second = (torch.load(folder / f"rank{r}.pt") for r in (0, 1))
    return first, second


def _committed_cpu_table(name: str, needed: dict[str, set], where: dict[str, object] | None = None) -> pd.DataFrame:
    path = TABLES / f"{name}_cpu.csv"
    if not path.exists():
        pytest.skip(f"{path.name} is not committed: its cpu run has not landed yet")
    results = pd.read_csv(path)
    for column, value in (where or {}).items():
        results = results[results[column] == value]
    missing = {column: sorted(values - set(results[column])) for column, values in needed.items()}
    if any(missing.values()):
        lacking = "; ".join(f"{column} {values}" for column, values in missing.items() if values)
        chosen = " where " + ", ".join(f"{column} = {value}" for column, value in where.items()) if where else ""
        pytest.skip(f"{path.name} lacks {lacking}{chosen}: those rows have not landed yet")
    return results


@pytest.fixture
def committed_cpu_table():
    """committed_cpu_table(name, needed, where=None): the committed cpu-scale table of `name`
    (`./run_all.sh --only NAME --scale cpu`), its rows narrowed to `where` (column = value); skips, naming what is
    missing, while the cpu run has not committed the rows (column values `needed`) a claim needs."""
    return _committed_cpu_table
