"""Image datasets of the Wasserstein VQ experiments: items (image in [-1, 1], label), official-code preprocessing.

Preprocessing follows the official Wasserstein-VQ code (data/augmentation.py, itself ADM's guided-diffusion crops):
train = random short side in [resolution, round(resolution / 0.8)], BOX halving, BICUBIC, random crop, no flip;
eval = BOX halving, BICUBIC to the resolution, center crop. The 32 px datasets are used as they are (see image_dataset).
"""

from __future__ import annotations

import os
import random
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import Dataset

from replicate.errors import ConfigError, MissingDataError, ReplicateError, unknown_name
from replicate.results import ROOT

# The copies of shared/data (see its README): $VQ_SHARED_DATA where the repository is checked out elsewhere.
SHARED_DATA = Path(os.environ.get("VQ_SHARED_DATA", ROOT.parent / "shared" / "data"))
# $VQ_CIFAR10_JPEG: the JPEG copy's archive itself (kept for existing set-ups)
JPEG_ARCHIVE = Path(os.environ.get("VQ_CIFAR10_JPEG", SHARED_DATA / "cifar10-jpeg.tar.gz"))
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
SPLITS = ("train", "test")
# 32 px datasets: no resize, no augmentation at their native resolution
SMALL = ("cifar10", "cifar10-jpeg", "cifar10-lossless", "svhn", "tinyimagenet32", "shapes")
TRAIN_MIN_CROP = 0.8  # official augmentation: the crop covers at least 80% of the short side
DATA_LABELS = {
    "cifar10": "CIFAR-10",
    "cifar10-jpeg": "CIFAR-10 (JPEG copy)",
    "cifar10-lossless": "CIFAR-10 (lossless copy)",
    "tinyimagenet32": "Tiny-ImageNet (32 px JPEG copy; ImageNet stand-in)",
    "celeba10k": "CelebA 10k (not FFHQ)",
    "odir256": "ODIR subset (1,673 images, 256 px JPEG)",
    "svhn": "SVHN",
    "ffhq": "FFHQ",
    "imagenet": "ImageNet-1k",
    "imagenet100": "ImageNet-100",
    "odir": "ODIR-5K",
    "folder": "image folder",
    "shapes": "generated shapes (smoke scale only)",
}
SHAPES_SIZES = {"train": 256, "test": 64}  # images per split of the generated smoke-scale dataset
ODIR_SPLIT = (0.7, 0.2, 0.1)  # Deferred Quantization's ODIR protocol: train / validation / test
# Deferred Quantization's ImageNet-100 protocol (V2 Sec. 5.1): a test set of 20,000 images sampled uniformly from the
# training classes, and a 5,000-image validation set. Whether they left the training pool is not stated: here they do.
IMAGENET100_HELD_OUT = (20_000, 5_000)  # test, validation

Images = Sequence[tuple[Image.Image, int]]  # what the loaders below return: (RGB PIL image, label) pairs


def resize_short_side(image: Image.Image, short: int) -> Image.Image:
    """ADM's resize: halve with BOX while the short side is >= 2 short, then BICUBIC so the short side is short."""
    while min(image.size) >= 2 * short:
        image = image.resize((image.width // 2, image.height // 2), resample=Image.BOX)
    scale = short / min(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), resample=Image.BICUBIC)


def center_crop(image: Image.Image, resolution: int) -> Image.Image:
    """Eval transform (ADM center_crop_arr): resize_short_side to the resolution, then the central square."""
    if image.size == (resolution, resolution):
        return image
    image = resize_short_side(image, resolution)
    left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def random_crop(image: Image.Image, resolution: int, rng: random.Random) -> Image.Image:
    """Train transform (official augmentation): short side uniform in [resolution, round(resolution / 0.8)]
    (= ADM's ceil at 256 px: [256, 320]), resize_short_side to it, then a random square; no flip."""
    image = resize_short_side(image, rng.randint(resolution, round(resolution / TRAIN_MIN_CROP)))
    left, top = rng.randint(0, image.width - resolution), rng.randint(0, image.height - resolution)
    return image.crop((left, top, left + resolution, top + resolution))


def to_signed_tensor(image: Image.Image) -> Tensor:
    """A float (3, H, W) tensor in [-1, 1] (the official code's ToTensor then Normalize(0.5, 0.5))."""
    from torchvision.transforms.functional import pil_to_tensor  # torchvision only where images are read

    return pil_to_tensor(image).float() / 127.5 - 1


class ImageDataset(Dataset):
    """(image, label) items: image a float (3, resolution, resolution) tensor in [-1, 1].

    The train crop of item i is a function of (seed, epoch, i) only, never of a global RNG or of worker scheduling,
    so a resumed run sees the same crops; call set_epoch at the start of every epoch."""

    def __init__(
        self, images: Images, classes: Sequence[str], *, resolution: int, train_augment: bool, seed: int
    ) -> None:
        self.images, self.classes = images, tuple(classes)
        self.resolution, self.train_augment, self.seed = resolution, train_augment, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.images[index]
        if self.train_augment:  # a str seed is hashed with SHA-512: stable across processes and Python versions
            image = random_crop(image, self.resolution, random.Random(f"{self.seed}/{self.epoch}/{index}"))
        else:
            image = center_crop(image, self.resolution)
        return to_signed_tensor(image), int(label)


class EpochKeyed(Dataset):
    """An ImageDataset (or a Subset of one) whose items are keyed by (epoch, index): the epoch travels with every
    index, so a persistent loader worker, which keeps its own copy of the dataset from the first epoch, crops as
    set_epoch in the main process would."""

    def __init__(self, data: Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int]:
        epoch, index = key
        if isinstance(self.data, torch.utils.data.Subset):
            dataset, index = self.data.dataset, self.data.indices[index]
        else:
            dataset = self.data
        dataset.set_epoch(epoch)
        return dataset[index]


class EpochBatches:
    """The batch sampler of a loader kept across epochs: set(epoch, index_lists) before each epoch's iteration; it
    yields that epoch's batches as (epoch, index) keys for EpochKeyed."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def set(self, epoch: int, index_lists: list[list[int]]) -> None:
        self.batches = [[(epoch, index) for index in indices] for indices in index_lists]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class ImageFiles:
    """(RGB PIL image, label) pairs read from a list of files; an undecodable file is a one-line ReplicateError."""

    def __init__(self, files: Sequence[str], labels: Sequence[int]) -> None:
        self.files, self.labels = files, labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path = self.files[index]
        try:
            with Image.open(path) as image:
                return image.convert("RGB"), self.labels[index]
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise ReplicateError(f"cannot decode image {path}: {error}") from None


def _image_files(folder: Path) -> list[str]:
    """All image files under folder, recursively, in sorted order (a stable index across machines)."""
    return sorted(
        os.path.join(parent, name)
        for parent, _, names in os.walk(folder, followlinks=True)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")  # skip macOS ._ files
    )


def class_folder(folder: Path) -> tuple[ImageFiles, list[str]]:
    """torchvision ImageFolder layout folder/<class>/**/<image>; labels by sorted class name."""
    if not folder.is_dir():
        raise MissingDataError(f"image folder {folder} not found (expected {folder}/<class>/<images>)")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise MissingDataError(f"no class subfolders in {folder} (expected {folder}/<class>/<images>)")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = _image_files(folder / name)
        if not found:
            raise MissingDataError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder / name}")
        files += found
        labels += [label] * len(found)
    return ImageFiles(files, labels), classes


def unpack(archive: Path, target: Path) -> Path:
    """Unpack archive to target once, safely (tarfile's 'data' filter) and atomically (a sibling temporary folder,
    then a rename), so that an interrupted unpack or a concurrent rank never leaves a half-filled target."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, filter="data")
            else:  # Python < 3.10.12: accept plain files and folders inside scratch only
                members = tar.getmembers()
                for member in members:
                    if (
                        not (member.isfile() or member.isdir())
                        or os.path.isabs(member.name)
                        or ".." in Path(member.name).parts
                    ):
                        raise ReplicateError(f"unsafe member {member.name!r} in {archive}")
                tar.extractall(scratch, members=members)
        try:
            scratch.rename(target)
        except OSError:
            if not target.is_dir():  # else another process finished first: use its copy
                raise
    except (tarfile.TarError, OSError) as error:
        raise ReplicateError(f"cannot unpack {archive} to {target}: {error}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _cifar10(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    from torchvision.datasets import CIFAR10

    root = Path(root or Path.home() / ".cache" / "vq-replicate" / "cifar10").expanduser()
    dataset = _torchvision(CIFAR10, "CIFAR-10", root, "cifar-10-batches-py", train=split == "train")
    return dataset, dataset.classes


def _svhn(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    from torchvision.datasets import SVHN

    root = Path(root or Path.home() / ".cache" / "vq-replicate" / "svhn").expanduser()
    return _torchvision(SVHN, "SVHN", root, f"{split}_32x32.mat", split=split), [str(digit) for digit in range(10)]


def _torchvision(kind: Callable, label: str, root: Path, files: str, **split) -> Images:
    """A torchvision dataset read from root, downloaded there only when its files are absent."""
    try:
        return kind(root, **split, download=False)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        pass
    try:
        return kind(root, **split, download=True)
    except Exception as error:  # no internet, a proxy, a read-only root: all end the same way for the user
        hint = "; without internet, use the lossless copy (dataset 'cifar10-lossless')" if label == "CIFAR-10" else ""
        raise MissingDataError(
            f"{label} not found in {root} and could not be downloaded (no internet? {type(error).__name__}): "
            f"run once on a machine with internet or place {files} there{hint}"
        ) from None


def _cifar10_jpeg(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    """The JPEG copy of CIFAR-10 (shared/data/README.md): root is the .tar.gz (default ../shared/data) or a
    folder already unpacked; an archive is unpacked once to cache_dir/cifar10-jpeg."""
    source = Path(root).expanduser() if root else JPEG_ARCHIVE
    if source.is_file():
        source = unpack(source, cache_dir / "cifar10-jpeg")
    elif not source.is_dir():
        raise MissingDataError(
            f"CIFAR-10 JPEG copy not found at {source}: pass the path of cifar10-jpeg.tar.gz (or of its unpacked "
            f"train/ and test/ folders) as the data root"
        )
    return class_folder(source / split)


class Shapes:
    """Generated 32 px images (a filled rectangle, ellipse or triangle of random colour, size and place on a
    random background; label = the shape), a function of (split, index) only: smoke-scale runs and tests need
    no data on disk."""

    KINDS = ("rectangle", "ellipse", "triangle")

    def __init__(self, split: str) -> None:
        self.split = split

    def __len__(self) -> int:
        return SHAPES_SIZES[self.split]

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = random.Random(f"shapes/{self.split}/{index}")
        colour = lambda: tuple(rng.randrange(256) for _ in range(3))  # noqa: E731
        image = Image.new("RGB", (32, 32), colour())
        label = rng.randrange(len(self.KINDS))
        x0, y0 = rng.randrange(0, 16), rng.randrange(0, 16)
        x1, y1 = x0 + rng.randrange(8, 16), y0 + rng.randrange(8, 16)
        draw = ImageDraw.Draw(image)
        if label == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour())
        elif label == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour())
        else:
            draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=colour())
        return image, label


def _shapes(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    return Shapes(split), list(Shapes.KINDS)


def _folder(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    if not root:
        raise MissingDataError("an image folder needs a data root holding train/<class>/* and test/<class>/*")
    return class_folder(Path(root).expanduser() / split)


def _shared_copy(archive: str, top: str, root: str | Path | None, cache_dir: Path) -> Path:
    """The unpacked folder of a shared/data archive: root is the .tar.gz, its unpacked top folder, or None for
    shared/data; an archive is unpacked once to cache_dir/<top>."""
    source = Path(root).expanduser() if root else SHARED_DATA / archive
    if source.is_file():
        return unpack(source, cache_dir / Path(archive).name.split(".")[0]) / top
    if (source / top).is_dir():
        return source / top
    if source.is_dir() and source.name == top:
        return source
    raise MissingDataError(
        f"{archive} not found at {source}: pass its path (or the folder it unpacks to) as data_root, or set "
        f"$VQ_SHARED_DATA to the folder holding it"
    )


def _cifar10_lossless(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    """CIFAR-10's original pixels as lossless WebP: cifar10/<split>/<class>/*.webp (shared/data/README.md)."""
    return class_folder(_shared_copy("cifar10-lossless.tar.gz", "cifar10", root, cache_dir) / split)


def _tinyimagenet32(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    """Tiny-ImageNet-200 at 32 px: train/<wnid>/images/*.JPEG; the test split is the 10,000 validation images,
    labelled by val/val_annotations.txt (class index = position of the wnid in sorted order, as train)."""
    folder = _shared_copy("tinyimagenet200-32px-jpeg.tar.gz", "tinyimagenet32", root, cache_dir)
    if split == "train":
        return class_folder(folder / "train")
    classes = sorted((folder / "wnids.txt").read_text().split())
    index = {wnid: label for label, wnid in enumerate(classes)}
    rows = [line.split("\t")[:2] for line in (folder / "val" / "val_annotations.txt").read_text().splitlines() if line]
    rows.sort()
    files = [str(folder / "val" / "images" / name) for name, _ in rows]
    return ImageFiles(files, [index[wnid] for _, wnid in rows]), classes


def _celeba10k(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    """10,000 aligned CelebA faces (89 x 109): the FFHQ stand-in. Both splits are all images, as the official
    FFHQ code trains and evaluates on one folder; the eval transform center-crops to a square and resizes."""
    files = _image_files(_shared_copy("celeba10k-89x109-jpeg.tar.gz", "celeba10k", root, cache_dir))
    return ImageFiles(files, [0] * len(files)), ["celeba"]


def _fixed_split(images: ImageFiles, split: str, test: int, validation: int) -> ImageFiles:
    """The `split` of a fixed permutation (seed 0) of the sorted files: "test" its last `test` files, before them
    `validation` unused ones, "train" the rest; the files of a split keep their sorted order."""
    order = torch.randperm(len(images.files), generator=torch.Generator().manual_seed(0)).tolist()
    train_end = len(order) - test - validation
    chosen = sorted(order[len(order) - test :] if split == "test" else order[:train_end])
    return ImageFiles([images.files[i] for i in chosen], [images.labels[i] for i in chosen])


def prepared_path(cache_dir: Path, name: str) -> Path:
    """Where `python -m replicate prepare NAME` puts a dataset a user downloads (replicate/prepare.py)."""
    return cache_dir / "data" / name


def prepared(cache_dir: Path, name: str) -> str | None:
    """The prepared folder of a dataset, when there is one: the loaders' last resort after root and $VQ_*_DIR."""
    folder = prepared_path(cache_dir, name)
    return str(folder) if folder.exists() else None


def _odir_split(images: ImageFiles, split: str) -> ImageFiles:
    """Deferred Quantization's 70 / 20 / 10 ODIR split: "train" the 70%, "test" the 10% (the 20% validation part
    is not used by any experiment here)."""
    test = len(images.files) - round((ODIR_SPLIT[0] + ODIR_SPLIT[1]) * len(images.files))
    validation = len(images.files) - round(ODIR_SPLIT[0] * len(images.files)) - test
    return _fixed_split(images, split, test, validation)


def _odir256(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    """ODIR fundus subset (normal / glaucoma / cataract, 256 px), split as the full ODIR (_odir_split)."""
    images, classes = class_folder(_shared_copy("odir-fundus-256-jpeg.tar.gz", "odir256", root, cache_dir))
    return _odir_split(images, split), classes


def _odir(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    """ODIR-5K as Deferred Quantization uses it (6,716 fundus images, 8 diagnostic categories): root/<category>/*,
    one folder per category (Kaggle "ocular-disease-recognition-odir5k" sorted by its labels), split 70 / 20 / 10."""
    root = root or os.environ.get("VQ_ODIR_DIR") or prepared(cache_dir, "odir")
    if not root:
        raise MissingDataError(
            "ODIR-5K not found: download Kaggle's ocular-disease-recognition-odir5k, run `python -m replicate "
            "prepare odir --from FOLDER` (or set $VQ_ODIR_DIR or root: a folder of "
            "<category>/<images>, the images in their 8 diagnostic categories)"
        )
    images, classes = class_folder(Path(root).expanduser())
    return _odir_split(images, split), classes


def _imagenet100(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    """ImageNet-100: root/train/<wnid>/* holding the 100 classes' ImageNet training images; Deferred Quantization's
    test set is 20,000 of them drawn uniformly (IMAGENET100_HELD_OUT), the validation set 5,000 more (unused)."""
    root = root or os.environ.get("VQ_IMAGENET100_DIR") or prepared(cache_dir, "imagenet100")
    base = Path(root).expanduser() if root else Path("<root>")
    if not (root and (base / "train").is_dir()):
        raise MissingDataError(
            f"ImageNet-100 not found: expected {base / 'train'}/<wnid>/<images>, the ImageNet training images of "
            "the 100 classes of CMC's list (the paper does not name its classes): run `python -m replicate prepare "
            "imagenet100 --from IMAGENET_FOLDER` (or set $VQ_IMAGENET100_DIR or root)"
        )
    images, classes = class_folder(base / "train")
    return _fixed_split(images, split, *IMAGENET100_HELD_OUT), classes


def _ffhq(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    """FFHQ: every image under root, nested or not, for both splits; the official code trains and evaluates on
    the same folder (FFHQ has no held-out split)."""
    root = root or os.environ.get("VQ_FFHQ_DIR") or prepared(cache_dir, "ffhq")
    files = _image_files(Path(root).expanduser()) if root else []
    if not files:
        raise MissingDataError(
            f"FFHQ images not found in {root or '(no root given, $VQ_FFHQ_DIR unset)'}: download images1024x1024 "
            "as in https://github.com/NVlabs/ffhq-dataset, run `python -m replicate prepare ffhq --from FOLDER` "
            "(or set $VQ_FFHQ_DIR or root to the folder; only the 1024 px release reproduces the "
            "official preprocessing, BOX halving to 256 then BICUBIC; a 256 px resize skips it)"
        )
    return ImageFiles(files, [0] * len(files)), ["ffhq"]


def source_resolution(name: str, root: str | Path | None) -> int | None:
    """The pixel size of the first source image of a folder dataset whose preprocessing depends on it (FFHQ:
    only the 1024 px release reproduces the official BOX halving then BICUBIC), for its `data` label."""
    if name != "ffhq":
        return None
    images, _ = _ffhq("train", root, ROOT / ".cache")
    with Image.open(images.files[0]) as first:
        return max(first.size)


def _imagenet(split: str, root: str | Path | None, cache_dir: Path) -> tuple[Images, list[str]]:
    """ImageNet-1k: root/train and root/val (the test split) in ImageFolder layout, val arranged by class."""
    root = root or os.environ.get("VQ_IMAGENET_DIR") or prepared(cache_dir, "imagenet")
    base = Path(root).expanduser() if root else Path("<root>")
    if not (root and (base / "train").is_dir() and (base / "val").is_dir()):
        raise MissingDataError(
            f"ImageNet-1k not found: expected {base / 'train'} and {base / 'val'}, each <class>/<images> "
            "(val arranged by class): run `python -m replicate prepare imagenet --from FOLDER` "
            "(or set $VQ_IMAGENET_DIR or root)"
        )
    return class_folder(base / ("train" if split == "train" else "val"))


DATASETS: dict[str, Callable[[str, str | Path | None, Path], tuple[Images, list[str]]]] = {
    "cifar10": _cifar10,
    "cifar10-jpeg": _cifar10_jpeg,
    "svhn": _svhn,
    "ffhq": _ffhq,
    "imagenet": _imagenet,
    "folder": _folder,
    "shapes": _shapes,
    "cifar10-lossless": _cifar10_lossless,
    "tinyimagenet32": _tinyimagenet32,
    "celeba10k": _celeba10k,
    "odir256": _odir256,
    "odir": _odir,
    "imagenet100": _imagenet100,
}


def image_dataset(
    name: str,
    split: str,
    *,
    root: str | Path | None,
    resolution: int,
    train_augment: bool,
    seed: int,
    cache_dir: str | Path | None = None,
) -> ImageDataset:
    """The named dataset's split as an ImageDataset; cache_dir (default $VQ_CACHE_DIR or <repo>/.cache) holds
    unpacked archives. The 32 px datasets (SMALL) are not resized or augmented at their native size, since the paper
    gives no CIFAR-10/SVHN training code; at another resolution they get the eval transform."""
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS)
    if resolution < 1:
        raise ConfigError(f"need resolution >= 1, got {resolution}")
    cache_dir = Path(cache_dir or os.environ.get("VQ_CACHE_DIR") or ROOT / ".cache")
    images, classes = DATASETS[name](split, root, cache_dir)
    augment = train_augment and name not in SMALL
    return ImageDataset(images, classes, resolution=resolution, train_augment=augment, seed=seed)
