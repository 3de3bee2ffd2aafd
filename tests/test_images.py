"""Image datasets: official-code crops, per-(seed, epoch, index) determinism, the JPEG-copy loader (on a generated
archive), one-line errors."""

import os
import random
import tarfile
import urllib.error
from pathlib import Path

import pytest
import torch
from conftest import SHAPE_JPEG_IMAGES
from PIL import Image
from skimage import data as skdata

from replicate.data import images
from replicate.data.images import (
    DATA_LABELS,
    DATASETS,
    EpochBatches,
    EpochKeyed,
    Shapes,
    center_crop,
    image_dataset,
    random_crop,
    to_signed_tensor,
)
from replicate.errors import ConfigError, MissingDataError, ReplicateError

PHOTOS = {"astronaut": "png", "chelsea": "jpg", "coffee": "jpg"}  # 512x512, 451x300, 600x400


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory) -> Path:
    """A folder tree train/<class>/<photo> and test/<class>/<photo> of three real photographs."""
    root = tmp_path_factory.mktemp("photos")
    for split in ("train", "test"):
        for name, extension in PHOTOS.items():
            (root / split / name).mkdir(parents=True)
            Image.fromarray(getattr(skdata, name)()).save(root / split / name / f"{name}.{extension}")
    return root


def coffee() -> Image.Image:
    return Image.fromarray(skdata.coffee())


class Draws:
    """A stand-in for random.Random that returns given values and records the bounds it was asked for."""

    def __init__(self, *values: int) -> None:
        self.values, self.bounds = list(values), []

    def randint(self, low: int, high: int) -> int:
        self.bounds.append((low, high))
        return self.values.pop(0)


def test_every_dataset_has_its_own_result_label():
    """A row's `data` column names its dataset: no two datasets (e.g. the JPEG and lossless CIFAR-10 copies) share
    a label."""
    assert set(DATASETS) == set(DATA_LABELS) >= {"cifar10", "cifar10-jpeg", "svhn", "ffhq", "imagenet", "folder"}
    assert len(set(DATA_LABELS.values())) == len(DATA_LABELS) and all(DATA_LABELS.values())


def test_training_images_at_256px_are_signed_float_crops(photo_root):
    dataset = image_dataset("folder", "train", root=photo_root, resolution=256, train_augment=True, seed=0)
    assert dataset.classes == ("astronaut", "chelsea", "coffee")
    for index in range(len(dataset)):
        image, label = dataset[index]
        assert image.shape == (3, 256, 256) and image.dtype == torch.float32 and label == index
        assert image.min() >= -1 and image.max() <= 1 and image.std() > 0.05


def test_eval_transform_is_center_crop(photo_root):
    dataset = image_dataset("folder", "test", root=photo_root, resolution=256, train_augment=False, seed=0)
    chelsea = Image.open(photo_root / "test" / "chelsea" / "chelsea.jpg").convert("RGB")
    # 451x300: no halving (300 < 512); BICUBIC to round(451 * 256 / 300) x 256 = 385x256; central 256 columns
    expected = chelsea.resize((385, 256), resample=Image.BICUBIC).crop((64, 0, 320, 256))
    assert torch.equal(dataset[1][0], to_signed_tensor(expected))
    assert torch.equal(dataset[1][0], dataset[1][0])


def test_downscaling_halves_with_box_filters_before_the_bicubic_resize():
    # eval at 64 px: 600x400 -> BOX 300x200 -> BOX 150x100 (100 < 128 stops) -> BICUBIC 96x64 -> central 64x64
    halved = coffee().resize((300, 200), resample=Image.BOX).resize((150, 100), resample=Image.BOX)
    expected = halved.resize((96, 64), resample=Image.BICUBIC).crop((16, 0, 80, 64))
    assert torch.equal(to_signed_tensor(center_crop(coffee(), 64)), to_signed_tensor(expected))
    # train at 64 px with a drawn short side of 70: same halvings (100 < 140 stops), BICUBIC 105x70, crop at (41, 6)
    draws = Draws(70, 41, 6)
    expected = halved.resize((105, 70), resample=Image.BICUBIC).crop((41, 6, 105, 70))
    assert torch.equal(to_signed_tensor(random_crop(coffee(), 64, draws)), to_signed_tensor(expected))
    assert draws.bounds == [(64, 80), (0, 41), (0, 6)]  # short side in [64, 64 / 0.8]; the crop fits inside
    assert random_crop(coffee(), 256, Draws(320, 0, 0)).size == (256, 256)  # 256 px: short side up to 320


def test_crops_depend_on_seed_epoch_index_only(photo_root):
    def items(seed: int, epoch: int) -> list[torch.Tensor]:
        dataset = image_dataset("folder", "train", root=photo_root, resolution=256, train_augment=True, seed=seed)
        dataset.set_epoch(epoch)
        random.seed(epoch)  # global RNGs must not matter
        torch.manual_seed(epoch + seed)
        return [dataset[index][0] for index in reversed(range(len(dataset)))]

    first = items(seed=1, epoch=3)
    assert all(torch.equal(a, b) for a, b in zip(first, items(seed=1, epoch=3), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, items(seed=1, epoch=4), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, items(seed=2, epoch=3), strict=True))


def test_a_persistent_loader_crops_each_epoch_as_set_epoch_does(photo_root):
    """Persistent workers keep their dataset copy from the first epoch; items keyed by (epoch, index) still crop as a
    fresh set_epoch would, through a Subset too."""
    dataset = image_dataset("folder", "train", root=photo_root, resolution=64, train_augment=True, seed=5)
    chosen = torch.utils.data.Subset(dataset, [2, 0])
    order = EpochBatches()
    loader = torch.utils.data.DataLoader(
        EpochKeyed(chosen), batch_sampler=order, num_workers=1, persistent_workers=True
    )
    for epoch in (0, 1, 2):
        order.set(epoch, [[1, 0]])
        (batch, labels), *_ = list(loader)
        dataset.set_epoch(epoch)
        assert torch.equal(batch, torch.stack([dataset[0][0], dataset[2][0]]))
        assert labels.tolist() == [dataset[0][1], dataset[2][1]]
    first = list(loader)  # epoch 2 again: the same crops
    assert torch.equal(first[0][0], batch)


def test_ffhq_is_one_folder_for_both_splits(photo_root, monkeypatch):
    monkeypatch.setenv("VQ_FFHQ_DIR", str(photo_root / "train"))  # nested: <photo>/<photo>.<ext>
    train = image_dataset("ffhq", "train", root=None, resolution=128, train_augment=True, seed=0)
    test = image_dataset("ffhq", "test", root=None, resolution=128, train_augment=False, seed=0)
    assert len(train) == len(test) == 3 and train.images.files == test.images.files
    assert test[2][0].shape == (3, 128, 128) and test[2][1] == 0


def test_native_32px_training_images_are_not_augmented(tmp_path):
    for split in ("train", "test"):
        for label in range(2):
            (tmp_path / split / f"c{label}").mkdir(parents=True)
            pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / split / f"c{label}" / "0000.png")
    dataset = image_dataset("cifar10-jpeg", "train", root=tmp_path, resolution=32, train_augment=True, seed=0)
    native = to_signed_tensor(Image.open(tmp_path / "train" / "c1" / "0000.png"))
    dataset.set_epoch(5)
    assert torch.equal(dataset[1][0], native) and dataset[1][1] == 1  # native 32 px: no augmentation
    upsampled = image_dataset("cifar10-jpeg", "test", root=tmp_path, resolution=64, train_augment=True, seed=0)
    assert upsampled[0][0].shape == (3, 64, 64)  # another resolution: the eval transform


def test_jpeg_copy_archive_unpacks_once_to_its_train_and_test_class_folders(shape_jpeg_archive, tmp_path, monkeypatch):
    """The loader of the CIFAR-10 JPEG copy, on a generated archive in the same layout (tests/conftest.py)."""
    cache = tmp_path / "cache"
    train = image_dataset(
        "cifar10-jpeg", "train", root=shape_jpeg_archive, resolution=32, train_augment=True, seed=0, cache_dir=cache
    )
    assert os.listdir(cache) == ["cifar10-jpeg"]  # no scratch folder left behind

    def no_unpacking(*args, **kwargs):
        raise AssertionError("unpacked a second time")

    monkeypatch.setattr(images.tarfile, "open", no_unpacking)
    test = image_dataset(
        "cifar10-jpeg", "test", root=shape_jpeg_archive, resolution=32, train_augment=False, seed=0, cache_dir=cache
    )
    assert (len(train), len(test)) == (SHAPE_JPEG_IMAGES["train"], SHAPE_JPEG_IMAGES["test"])
    assert train.classes == test.classes == tuple(sorted(Shapes.KINDS))  # sorted class folders
    written = sorted(Shapes.KINDS[Shapes("train")[i][1]] for i in range(SHAPE_JPEG_IMAGES["train"]))
    assert [train.classes[label] for label in train.images.labels] == written  # grouped by class folder
    for dataset, split in ((train, "train"), (test, "test")):
        for index in (0, len(dataset) - 1):
            image, label = dataset[index]
            stored = Path(dataset.images.files[index])
            assert stored.parent == cache / "cifar10-jpeg" / split / dataset.classes[label]
            assert torch.equal(image, to_signed_tensor(Image.open(stored).convert("RGB")))  # 32 px: not augmented


def test_unpack_refuses_path_traversal(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    (tmp_path / "payload.txt").write_text("x")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "payload.txt", arcname="../escaped.txt")
    with pytest.raises(ReplicateError, match="cannot unpack"):
        images.unpack(archive, tmp_path / "cache" / "out")
    assert not (tmp_path / "cache" / "escaped.txt").exists() and os.listdir(tmp_path / "cache") == []


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_dataset_folder_is_a_one_line_error_naming_where_to_put_it(tmp_path, monkeypatch):
    nowhere = tmp_path / "nowhere"
    with pytest.raises(MissingDataError) as error:
        image_dataset("ffhq", "train", root=nowhere, resolution=256, train_augment=True, seed=0)
    assert str(nowhere) in one_line(error) and "ffhq-dataset" in str(error.value)

    monkeypatch.delenv("VQ_IMAGENET_DIR", raising=False)
    with pytest.raises(MissingDataError) as error:
        image_dataset("imagenet", "test", root=None, resolution=256, train_augment=False, seed=0)
    assert "<root>/train" in one_line(error) and "<root>/val" in str(error.value)
    with pytest.raises(MissingDataError, match=f"{nowhere}/train and {nowhere}/val"):
        image_dataset("imagenet", "test", root=nowhere, resolution=256, train_augment=False, seed=0)


@pytest.mark.parametrize(
    "name, patched", [("cifar10", "cifar.download_and_extract_archive"), ("svhn", "svhn.download_url")]
)
def test_failed_download_is_one_line(name, patched, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(f"torchvision.datasets.{patched}", offline)
    with pytest.raises(MissingDataError) as error:
        image_dataset(name, "test", root=tmp_path, resolution=32, train_augment=False, seed=0)
    assert str(tmp_path) in one_line(error) and "could not be downloaded" in str(error.value)
    assert error.value.__suppress_context__


def test_folder_without_classes_or_images_is_a_clear_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(MissingDataError, match="no class subfolders"):
        image_dataset("folder", "train", root=tmp_path, resolution=32, train_augment=False, seed=0)
    (tmp_path / "train" / "cat").mkdir()
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(MissingDataError, match="no image files"):
        image_dataset("folder", "train", root=tmp_path, resolution=32, train_augment=False, seed=0)
    with pytest.raises(MissingDataError, match="not found"):
        image_dataset("folder", "test", root=tmp_path, resolution=32, train_augment=False, seed=0)


def test_corrupt_image_names_the_file(tmp_path):
    bad = tmp_path / "train" / "cat" / "0000.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\xff\xd8 this is not a JPEG" * 10)
    dataset = image_dataset("folder", "train", root=tmp_path, resolution=32, train_augment=False, seed=0)
    with pytest.raises(ReplicateError) as error:
        dataset[0]
    assert str(bad) in one_line(error)


def test_unknown_dataset_or_split_lists_the_valid_names():
    with pytest.raises(ConfigError) as error:
        image_dataset("mnist", "train", root=None, resolution=32, train_augment=False, seed=0)
    assert all(name in str(error.value) for name in DATASETS)
    with pytest.raises(ConfigError, match="train, test|test, train"):
        image_dataset("folder", "val", root=None, resolution=32, train_augment=False, seed=0)
