import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from replicate.data.images import SHAPES_SIZES, Shapes
from replicate.results import ROOT, TABLES

pytest_plugins = ["checkout_guard"]  # the session fails if a test wrote into the checkout

SHAPE_JPEG_IMAGES = {"train": 32, "test": 8}  # a small archive in the CIFAR-10 JPEG copy's layout


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test reaches the network: weights are never fetched (tests/test_weights.py fetches from local files)."""
    monkeypatch.setenv("VQ_OFFLINE", "1")


def write_shape_images(root: Path, extension: str, sizes: dict[str, int]) -> Path:
    """The first sizes[split] images of the package's generated Shapes dataset (replicate/data/images.py), written as
    root/<split>/<shape>/<index>.<extension>: the layout of the "folder" dataset and of the CIFAR-10 JPEG copy."""
    for split, count in sizes.items():
        shapes = Shapes(split)
        for index in range(count):
            image, label = shapes[index]
            folder = root / split / Shapes.KINDS[label]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index:04d}.{extension}")
    return root


@pytest.fixture(scope="session")
def shape_folder(tmp_path_factory) -> Path:
    """The Shapes dataset as an image folder for the "folder" dataset (data_root): 3 shape classes of 32 px PNG
    images, all of train/ and test/, the same in every checkout (no download, no shared archive)."""
    return write_shape_images(tmp_path_factory.mktemp("shapes"), "png", SHAPES_SIZES)


@pytest.fixture(scope="session")
def shape_jpeg_archive(tmp_path_factory) -> Path:
    """A small .tar.gz in the layout of the CIFAR-10 JPEG copy (train/<class>/*.jpg, test/<class>/*.jpg at the top
    level): the first 32 training and 8 test images of the Shapes dataset."""
    source = write_shape_images(tmp_path_factory.mktemp("shapes-jpeg"), "jpg", SHAPE_JPEG_IMAGES)
    archive = tmp_path_factory.mktemp("archive") / "shapes-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in SHAPE_JPEG_IMAGES:
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


def judged(name: str, results: pd.DataFrame) -> list:
    """The claims of experiment `name` on these cpu-scale rows, judged against the seed noise as the comparison and
    REPORT.md judge them (report/noise.py)."""
    from replicate.registry import EXPERIMENTS
    from replicate.report.noise import judged_claims

    return judged_claims(EXPERIMENTS[name], results, "cpu", TABLES)
