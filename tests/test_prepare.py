"""`python -m replicate prepare`: a good folder is linked where the loaders read it; an absent or wrong one is one
line with the instructions and exit 2; ImageNet-100 is exactly CMC's 100 classes."""

import os
import urllib.error
from pathlib import Path

import pytest
from PIL import Image

from replicate.cli import main
from replicate.data.images import DATASETS, image_dataset
from replicate.prepare import IMAGENET100_CLASSES, ODIR_CATEGORIES, prepared_folder


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """prepare links under $VQ_CACHE_DIR/data: a temporary folder, never the checkout's .cache."""
    monkeypatch.setenv("VQ_CACHE_DIR", str(tmp_path / "cache"))


def write_images(folder: Path, names: list[str]) -> None:
    """Tiny PNGs: the first written, the others hard links to it (thousands of files in a blink)."""
    first = folder / names[0]
    first.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (200, 30, 90)).save(first)
    for name in names[1:]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(first, folder / name)


def one_error_line(argv: list[str], capsys) -> str:
    """The stderr line of a command that must end with exit status 2."""
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's own errors
        status = stop.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    return err


def test_a_good_ffhq_folder_is_linked_and_the_loader_reads_it(tmp_path, monkeypatch, capsys):
    source = tmp_path / "images1024x1024"
    write_images(source, ["00000/00000.png", "00000/00001.png", "01000/01000.png", "LICENSE.png"])
    (source / "LICENSE.txt").write_text("not an image")
    assert main(["prepare", "ffhq", "--from", str(source), "--partial"]) == 0
    target = prepared_folder("ffhq")
    assert f"linked at {target}: the loader finds it there" in capsys.readouterr().out
    monkeypatch.delenv("VQ_FFHQ_DIR", raising=False)  # found in the cache, where prepare put it
    dataset = image_dataset("ffhq", "train", root=None, resolution=8, train_augment=False, seed=0)
    assert len(dataset) == 4 and tuple(dataset[0][0].shape) == (3, 8, 8)


def test_a_copy_short_of_the_full_release_stops_unless_partial(tmp_path, capsys):
    write_images(tmp_path / "ffhq", ["a.png", "b.png"])
    err = one_error_line(["prepare", "ffhq", "--from", str(tmp_path / "ffhq")], capsys)
    assert "found 2 images, the full release has 70,000" in err and "--partial" in err
    assert not prepared_folder("ffhq").exists()


def test_an_undecodable_image_is_one_line_naming_it(tmp_path, capsys):
    write_images(tmp_path / "ffhq", ["a.png"])
    (tmp_path / "ffhq" / "b.png").write_bytes(b"not a png")
    err = one_error_line(["prepare", "ffhq", "--from", str(tmp_path / "ffhq"), "--partial"], capsys)
    assert "cannot decode image" in err and "b.png" in err


@pytest.mark.parametrize("name", ["ffhq", "imagenet", "imagenet100", "odir"])
def test_an_absent_folder_is_one_line_saying_where_to_get_the_data(name, tmp_path, capsys):
    err = one_error_line(["prepare", name, "--from", str(tmp_path / "nowhere")], capsys)
    assert "nowhere is not a folder" in err and f"prepare {name} --from" in err and "http" in err
    err = one_error_line(["prepare", name], capsys)
    assert f"prepare {name} needs --from FOLDER" in err


def test_wrong_layouts_are_one_line_naming_the_expected_one(tmp_path, capsys):
    write_images(tmp_path / "flat" / "val", ["ILSVRC2012_val_00000001.JPEG"])
    err = one_error_line(["prepare", "imagenet", "--from", str(tmp_path / "flat")], capsys)
    assert "unsorted" in err and "FOLDER/val/<wnid>" in err

    write_images(tmp_path / "few" / "train" / "n01", ["a.png"])
    write_images(tmp_path / "few" / "val" / "n01", ["a.png"])
    err = one_error_line(["prepare", "imagenet", "--from", str(tmp_path / "few")], capsys)
    assert "has 1 class folders, not 1000" in err

    for category in ("normal", "glaucoma", "cataract"):  # the shared odir256 subset, not ODIR-5K
        write_images(tmp_path / "odir256" / category, ["1_left.jpg"])
    err = one_error_line(["prepare", "odir", "--from", str(tmp_path / "odir256")], capsys)
    assert "3 category folders" in err and "full_df.csv" in err

    err = one_error_line(["prepare", "imagenet100", "--from", str(tmp_path / "few")], capsys)
    assert "100 of the 100 ImageNet-100 classes are not in" in err


def test_a_full_imagenet_layout_is_accepted(tmp_path, capsys):
    for split in ("train", "val"):
        write_images(tmp_path / "in1k" / split, [f"n{c:08d}/{c}.JPEG" for c in range(1000)])
    assert main(["prepare", "imagenet", "--from", str(tmp_path / "in1k"), "--partial"]) == 0
    assert "train: 1,000 images (--partial" in capsys.readouterr().out
    images, classes = DATASETS["imagenet"]("test", prepared_folder("imagenet"), tmp_path)
    assert len(classes) == 1000 and len(images) == 1000


def test_imagenet100_links_exactly_the_listed_classes(tmp_path, monkeypatch, capsys):
    extra = ["n00000001", "n09999999"]  # ImageNet classes outside the list
    names = [f"{wnid}/{wnid}_{i}.JPEG" for wnid in [*IMAGENET100_CLASSES, *extra] for i in range(2)]
    write_images(tmp_path / "in1k" / "train", names)
    assert len(set(IMAGENET100_CLASSES)) == 100
    assert main(["prepare", "imagenet100", "--from", str(tmp_path / "in1k"), "--partial"]) == 0
    target = prepared_folder("imagenet100")
    assert sorted(os.listdir(target / "train")) == sorted(IMAGENET100_CLASSES)
    monkeypatch.setenv("VQ_IMAGENET100_DIR", str(target))
    images, classes = DATASETS["imagenet100"]("test", None, tmp_path)  # 200 images < the 20,000 held out: all
    assert classes == sorted(IMAGENET100_CLASSES) and len(images) == 200
    assert "200 images (--partial: the full release has 126,689)" in capsys.readouterr().out


def test_odir_is_sorted_into_its_8_categories_from_kaggles_table(tmp_path, monkeypatch):
    source = tmp_path / "odir5k"
    rows = [(f"{i}_left.jpg", label) for i, label in enumerate(ODIR_CATEGORIES)] + [("8_right.jpg", "N")]
    write_images(source / "preprocessed_images", [name for name, _ in rows])
    table = "ID,filename,labels\n" + "".join(f"{i},{name},['{label}']\n" for i, (name, label) in enumerate(rows))
    (source / "full_df.csv").write_text(table)
    assert main(["prepare", "odir", "--from", str(source)]) == 0
    monkeypatch.setenv("VQ_ODIR_DIR", str(prepared_folder("odir")))
    train, classes = DATASETS["odir"]("train", None, tmp_path)
    test, _ = DATASETS["odir"]("test", None, tmp_path)
    assert classes == sorted(ODIR_CATEGORIES.values()) and (len(train), len(test)) == (6, 1)
    assert sorted(os.listdir(prepared_folder("odir") / "normal")) == ["0_left.jpg", "8_right.jpg"]


def test_a_failed_torchvision_download_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.datasets.svhn.download_url", offline)
    err = one_error_line(["prepare", "svhn", "--from", str(tmp_path)], capsys)
    assert "could not be downloaded" in err
