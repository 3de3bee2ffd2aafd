"""Fetching pretrained weights (metrics/image.py weights_file, fetch_weights) from local file URLs: the cache, the
hash check, offline mode and a failed download; never the network."""

import hashlib

import pytest
import torch

from replicate.metrics import image
from replicate.metrics.image import OFFLINE_ENV, weights_file

CONTENT = b"a small stand-in for a weights file\n"
PREFIX = hashlib.sha256(CONTENT).hexdigest()[:8]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub folder, downloads allowed, and a published file served from a local file URL."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    served = tmp_path / "served"
    served.mkdir()
    urls = {}
    for name in (f"net-{PREFIX}.pth", "net-0badc0de.pth"):
        (served / name).write_bytes(CONTENT)
        urls[name] = (served / name).as_uri()
    monkeypatch.setattr(image, "WEIGHT_URLS", urls)
    return tmp_path / "hub" / "checkpoints"


def test_a_missing_file_is_fetched_into_the_hub_cache_once(hub, monkeypatch):
    name = f"net-{PREFIX}.pth"
    path, reason = weights_file(None, "VQ_TEST_WEIGHTS", name)
    assert (path, reason) == (hub / name, "") and path.read_bytes() == CONTENT
    monkeypatch.setattr(image, "WEIGHT_URLS", {})  # a second call reads the cache: no URL needed
    assert weights_file(None, "VQ_TEST_WEIGHTS", name) == (hub / name, "")


def test_a_download_whose_hash_does_not_match_its_name_is_deleted_and_the_metric_not_computed(hub):
    path, reason = weights_file(None, "VQ_TEST_WEIGHTS", "net-0badc0de.pth")
    assert path is None and reason.startswith("not computed: weights unavailable") and "not 0badc0de" in reason
    assert list(hub.iterdir()) == []  # neither the file nor its partial download


def test_offline_mode_never_downloads(hub, monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    path, reason = weights_file(None, "VQ_TEST_WEIGHTS", f"net-{PREFIX}.pth")
    assert path is None and "download" not in reason and not hub.exists()


def test_a_failed_download_is_a_note_not_an_error(hub, monkeypatch, tmp_path):
    name = f"net-{PREFIX}.pth"
    monkeypatch.setattr(image, "WEIGHT_URLS", {name: (tmp_path / "nowhere" / name).as_uri()})
    path, reason = weights_file(None, "VQ_TEST_WEIGHTS", name)
    assert path is None and "download from file://" in reason and "failed" in reason
    assert list(hub.iterdir()) == []


def test_an_explicit_weights_path_is_never_replaced_by_a_download(hub, tmp_path):
    path, reason = weights_file(tmp_path / "missing.pth", "VQ_TEST_WEIGHTS", f"net-{PREFIX}.pth")
    assert path is None and "download" not in reason and not hub.exists()


def test_every_published_file_carries_its_hash_prefix():
    for name in image.WEIGHT_URLS:
        assert image.WEIGHT_URLS[name].endswith(name) and len(name.rsplit("-", 1)[1].split(".")[0]) >= 8
