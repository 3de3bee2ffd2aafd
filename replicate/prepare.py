"""`python -m replicate prepare DATASET --from FOLDER`: check a dataset that cannot be downloaded automatically, build
the subset its loader reads where one is needed, and link it at <cache>/data/<dataset> (cache: $VQ_CACHE_DIR or
<repo>/.cache), the folder to name in its $VQ_<DATASET>_DIR or data_root (data/images.py).

  python -m replicate prepare ffhq --from ~/ffhq/images1024x1024   # 70,000 images, nested or not
  python -m replicate prepare imagenet --from /data/ILSVRC2012      # train/<wnid>/*, val/<wnid>/*
  python -m replicate prepare imagenet100 --from /data/ILSVRC2012   # the 100 classes of CMC's list from train/
  python -m replicate prepare odir --from ~/odir5k                  # Kaggle's full_df.csv + preprocessed_images/
  python -m replicate prepare cifar10 [--from ROOT]                 # torchvision's download (also svhn)

The check is cheap: the loader's own listing counts the files, and SAMPLE of them, spread over the sorted list,
are decoded. A count other than the full release's stops with one line unless --partial.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from replicate.data.images import ImageFiles, _image_files, class_folder, image_dataset, prepared_path
from replicate.errors import MissingDataError, ReplicateError, unknown_name
from replicate.results import ROOT

SAMPLE = 16  # images decoded per check: a truncated or corrupt copy shows; decoding 1.3 M files would take hours
ENV = {"ffhq": "VQ_FFHQ_DIR", "imagenet": "VQ_IMAGENET_DIR", "imagenet100": "VQ_IMAGENET100_DIR", "odir": "VQ_ODIR_DIR"}
# Image counts of the full releases: FFHQ (NVlabs/ffhq-dataset README), ILSVRC-2012 train / val, ImageNet-100 (the
# ImageNet training images of CMC's 100 classes)
FULL = {"ffhq": 70_000, "imagenet": 1_281_167, "imagenet-val": 50_000, "imagenet100": 126_689}
ODIR_PAPER_IMAGES = 6_716  # Deferred Quantization V2 Sec. 5.1; Kaggle's full_df.csv lists 6,392
# ImageNet-100 as CMC defines it (Tian et al. 2019, arXiv 1906.05849; github.com/HobbitLong/CMC imagenet100.txt):
# Deferred Quantization does not name its 100 classes, so the field's common list is the choice (data/images.py).
IMAGENET100_CLASSES = (
    "n02869837 n01749939 n02488291 n02107142 n13037406 n02091831 n04517823 n04589890 n03062245 n01773797 "
    "n01735189 n07831146 n07753275 n03085013 n04485082 n02105505 n01983481 n02788148 n03530642 n04435653 "
    "n02086910 n02859443 n13040303 n03594734 n02085620 n02099849 n01558993 n04493381 n02109047 n04111531 "
    "n02877765 n04429376 n02009229 n01978455 n02106550 n01820546 n01692333 n07714571 n02974003 n02114855 "
    "n03785016 n03764736 n03775546 n02087046 n07836838 n04099969 n04592741 n03891251 n02701002 n03379051 "
    "n02259212 n07715103 n03947888 n04026417 n02326432 n03637318 n01980166 n02113799 n02086240 n03903868 "
    "n02483362 n04127249 n02089973 n03017168 n02093428 n02804414 n02396427 n04418357 n02172182 n01729322 "
    "n02113978 n03787032 n02089867 n02119022 n03777754 n04238763 n02231487 n03032252 n02138441 n02104029 "
    "n03837869 n03494278 n04136333 n03794056 n03492542 n02018207 n04067472 n03930630 n03584829 n02123045 "
    "n04229816 n02100583 n03642806 n04336792 n03259280 n02116738 n02108089 n03424325 n01855672 n02090622"
).split()
# ODIR-5K's 8 diagnostic labels (full_df.csv's `labels` column) -> the category folders the loader reads
ODIR_CATEGORIES = {
    "N": "normal",
    "D": "diabetes",
    "G": "glaucoma",
    "C": "cataract",
    "A": "amd",
    "H": "hypertension",
    "M": "myopia",
    "O": "other",
}
HOW = {  # where to get each dataset and the layout --from must have: the end of every error line
    "ffhq": "download images1024x1024 (70,000 PNG, 1024 px) as in https://github.com/NVlabs/ffhq-dataset "
    "(python download_ffhq.py --images) and pass that folder: python -m replicate prepare ffhq --from "
    "PATH/images1024x1024",
    "imagenet": "get ILSVRC-2012 (https://image-net.org/download: train and val archives), unpack to FOLDER/train/"
    "<wnid>/*.JPEG and FOLDER/val/<wnid>/*.JPEG (val sorted into class folders, e.g. with valprep.sh of "
    "github.com/soumith/imagenetloader.torch) and pass FOLDER: python -m replicate prepare imagenet --from FOLDER",
    "imagenet100": "pass an ImageNet-1k folder holding train/<wnid>/*.JPEG (https://image-net.org/download); the "
    "100 classes of CMC's list are linked from it: python -m replicate prepare imagenet100 --from FOLDER",
    "odir": "download https://www.kaggle.com/datasets/andrewmvd/ocular-disease-recognition-odir5k, unzip it and "
    "pass the folder holding full_df.csv and preprocessed_images/ (or a folder already sorted into the 8 "
    f"<category>/ folders {', '.join(ODIR_CATEGORIES.values())}): python -m replicate prepare odir --from FOLDER",
}


def prepared_folder(name: str) -> Path:
    """Where `prepare` links a dataset: <cache>/data/<name>, the cache being image_dataset's."""
    return prepared_path(Path(os.environ.get("VQ_CACHE_DIR") or ROOT / ".cache"), name)


def sample_size(images: ImageFiles) -> tuple[int, int]:
    """Decode SAMPLE images spread evenly over the sorted files (ImageFiles: one line naming an undecodable file);
    the first one's (width, height)."""
    count, sample = len(images), min(SAMPLE, len(images))
    picks = sorted({round(i * (count - 1) / max(1, sample - 1)) for i in range(sample)})
    return [images[i][0].size for i in picks][0]


def check_count(what: str, found: int, full: int, partial: bool) -> str:
    """The count's note; a count other than the full release's stops unless partial."""
    if found == full:
        return f"{found:,} images (the full release)"
    if not partial:
        raise MissingDataError(
            f"{what}: found {found:,} images, the full release has {full:,}: finish the download, or pass --partial "
            "to use these (results on them are not on the paper's data)"
        )
    return f"{found:,} images (--partial: the full release has {full:,})"


def _listed(folder: Path, what: str) -> tuple[ImageFiles, list[str]]:
    """The loader's class_folder listing, its missing-data line followed by the instructions."""
    try:
        return class_folder(folder)
    except MissingDataError as error:
        raise MissingDataError(f"{error}; {HOW[what]}") from None


def _ffhq(source: Path, stage: Path, partial: bool) -> str:
    files = _image_files(source)
    if not files:
        raise MissingDataError(f"no image files under {source}; {HOW['ffhq']}")
    images = ImageFiles(files, [0] * len(files))
    note = check_count(f"FFHQ in {source}", len(files), FULL["ffhq"], partial)
    width, height = sample_size(images)
    stage.symlink_to(source, target_is_directory=True)
    return f"{note}, {width} x {height} px" + ("" if width == 1024 else " (only the 1024 px release is official)")


def _imagenet(source: Path, stage: Path, partial: bool) -> str:
    val = source / "val"
    if val.is_dir() and not any(entry.is_dir() for entry in os.scandir(val)) and _image_files(val):
        raise MissingDataError(f"{val} holds its images unsorted: sort them into <wnid>/ folders; {HOW['imagenet']}")
    notes = []
    for split, full in (("train", FULL["imagenet"]), ("val", FULL["imagenet-val"])):
        images, classes = _listed(source / split, "imagenet")
        if len(classes) != 1000:
            raise MissingDataError(f"{source / split} has {len(classes)} class folders, not 1000; {HOW['imagenet']}")
        notes.append(f"{split}: " + check_count(f"ImageNet {split} in {source}", len(images), full, partial))
        sample_size(images)
    stage.symlink_to(source, target_is_directory=True)
    return ", ".join(notes)


def _imagenet100(source: Path, stage: Path, partial: bool) -> str:
    train = source / "train"
    if not train.is_dir():
        raise MissingDataError(f"{train} not found; {HOW['imagenet100']}")
    absent = [wnid for wnid in IMAGENET100_CLASSES if not (train / wnid).is_dir()]
    if absent:
        raise MissingDataError(
            f"{len(absent)} of the 100 ImageNet-100 classes are not in {train} (e.g. {', '.join(absent[:3])}); "
            f"{HOW['imagenet100']}"
        )
    for wnid in IMAGENET100_CLASSES:  # only the 100 classes: the loader reads every class folder of train/
        (stage / "train" / wnid).parent.mkdir(parents=True, exist_ok=True)
        (stage / "train" / wnid).symlink_to(train / wnid, target_is_directory=True)
    images, _ = _listed(stage / "train", "imagenet100")
    note = check_count(f"ImageNet-100 in {train}", len(images), FULL["imagenet100"], partial)
    sample_size(images)
    return f"{note} in the 100 classes of CMC's list"


def _odir(source: Path, stage: Path, partial: bool) -> str:
    table = source / "full_df.csv"
    if not table.is_file():  # already sorted by category: used as it is
        images, classes = _listed(source, "odir")
        if len(classes) != len(ODIR_CATEGORIES):
            raise MissingDataError(
                f"{source} has {len(classes)} category folders ({', '.join(classes[:8])}), not the 8 of ODIR-5K and "
                f"no full_df.csv; {HOW['odir']}"
            )
        stage.symlink_to(source, target_is_directory=True)
    else:  # Kaggle's download: one label per image in full_df.csv, the images in preprocessed_images/
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or not {"filename", "labels"} <= set(rows[0]):
            raise MissingDataError(f"{table} has no filename and labels columns; {HOW['odir']}")
        for row in rows:
            label, image = row["labels"].strip("[]'\" "), source / "preprocessed_images" / row["filename"]
            if label not in ODIR_CATEGORIES or not image.is_file():
                raise MissingDataError(f"{table}: label {row['labels']!r} or image {image} not found; {HOW['odir']}")
            link = stage / ODIR_CATEGORIES[label] / row["filename"]
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():  # an image listed twice keeps one link
                link.symlink_to(image)
        images, classes = _listed(stage, "odir")
    sample_size(images)
    return f"{len(images):,} images in {len(classes)} categories (the paper: {ODIR_PAPER_IMAGES:,})"


PREPARERS: dict[str, Callable[[Path, Path, bool], str]] = {
    "ffhq": _ffhq,
    "imagenet": _imagenet,
    "imagenet100": _imagenet100,
    "odir": _odir,
}
DOWNLOADED = ("cifar10", "svhn")  # torchvision downloads them: prepare triggers the loader's download


def _remove(path: Path) -> None:
    """Remove a link or a folder of links that prepare made (never what the links point to)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def prepare(name: str, source: Path | None, *, partial: bool = False, report=print) -> Path | None:
    """Check `source` for dataset `name` and link it (or the subset built from it) at prepared_folder(name);
    a missing or wrong folder is one line (MissingDataError) with the instructions. cifar10 and svhn: the loader's
    download into `source` (default: its own root); nothing is linked."""
    if name in DOWNLOADED:
        for split in ("train", "test"):
            found = image_dataset(name, split, root=source, resolution=32, train_augment=False, seed=0)
            report(f"{name} {split}: {len(found):,} images (torchvision, {source or 'its default root'})")
        return None
    if name not in PREPARERS:
        raise unknown_name("dataset to prepare", name, [*PREPARERS, *DOWNLOADED])
    if source is None:
        raise MissingDataError(f"prepare {name} needs --from FOLDER: {HOW[name]}")
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise MissingDataError(f"{source} is not a folder; {HOW[name]}")
    target = prepared_folder(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f".{name}-staging"  # built aside, then renamed: a stopped prepare leaves no half target
    _remove(stage)
    try:
        note = PREPARERS[name](source, stage, partial)
        _remove(target)
        stage.rename(target)
    except (OSError, ReplicateError) as error:
        _remove(stage)
        if isinstance(error, ReplicateError):
            raise
        raise ReplicateError(f"cannot link {source} at {target}: {error}") from None
    report(f"{name}: {note}, from {source}")
    report(f"linked at {target}: the loader finds it there (elsewhere: export {ENV[name]}={target})")
    return target
