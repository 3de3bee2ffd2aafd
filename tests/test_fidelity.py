"""Fidelity to the official code: the two Table 5 models' parameter counts, Online VQ's order in the atomic
setting, TF32 in the provenance, the named LPIPS / rFID protocols, FFHQ's source resolution, the two deferred
arms, the EMA count after a k-means initialisation, the spread of used codes, and the shared data copies."""

import copy
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from replicate import distributed
from replicate.configs import SyntheticTraining, TokenizerTraining, VQVAEConfig, smoke_scale
from replicate.data.images import image_dataset
from replicate.metrics.codebook import codebook_distances, used_code_distances
from replicate.metrics.image import lpips_distance
from replicate.models.vqvae import VQVAE
from replicate.quantize import build_quantizer, quantizer_config
from replicate.registry import EXPERIMENTS
from replicate.results import provenance
from replicate.runner import run_experiment
from replicate.train.atomic import atomic_quantizer, atomic_step
from replicate.train.evaluate import evaluate_tokenizer
from replicate.train.schedule import QuantizationSchedule
from replicate.train.synthetic import train_synthetic
from replicate.train.tokenizer import build_model, describe_data


@pytest.mark.parametrize("resolution, parameters", [(32, 4_371_403), (256, 18_552_395)])
def test_table5_models_have_the_official_parameter_counts(resolution, parameters):
    """Encoder, decoder and the two 1 x 1 projections (not the codebook) of the official factor-4 and factor-16
    models (code/VQVAE/model/vqvae.py): the 32 px one has no attention outside its middle blocks."""
    model = VQVAE(VQVAEConfig(resolution), build_quantizer(quantizer_config("vanilla", 16, 8)))
    counted = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("quantizer."))
    assert counted == parameters
    assert build_model(TokenizerTraining("cifar10", "vanilla", 16, VQVAEConfig(resolution))).config == model.config


def test_online_vq_in_the_atomic_setting_averages_usage_over_assignments_to_the_stepped_codebook():
    torch.manual_seed(0)
    quantizer, optimizer = atomic_quantizer("online", 32, 2, init="normal", init_scale=1.0)
    features = torch.randn(500, 2) + 2.0
    expected = copy.deepcopy(quantizer)
    out = expected(features)
    step = torch.optim.SGD(expected.parameters(), lr=optimizer.param_groups[0]["lr"], momentum=0.9)
    out.loss.backward()
    step.step()
    after = torch.cdist(features, expected.codebook().detach()).argmin(1)
    counts = torch.bincount(after, minlength=32).double()
    usage = expected.usage * expected.config.decay + (1 - expected.config.decay) * counts / counts.sum()
    atomic_step(quantizer, optimizer, features)
    assert torch.allclose(quantizer.usage.double(), usage.double(), atol=1e-7)


def test_tf32_is_on_at_paper_scale_off_below_and_recorded_in_every_row(tmp_path):
    table4 = EXPERIMENTS["wvq_table4"]
    run_experiment(table4, "smoke", tables=tmp_path, figures=tmp_path)
    assert not torch.backends.cuda.matmul.allow_tf32
    run_experiment(table4, "smoke", tables=tmp_path, figures=tmp_path, tf32=True, force=True)
    assert torch.backends.cuda.matmul.allow_tf32
    distributed.set_tf32(False)
    assert provenance(torch.device("cpu"))["tf32"] is False  # CPU matmuls are never TF32


def test_cpu_rows_name_the_vector_instructions_their_kernels_used():
    device = provenance(torch.device("cpu"))["device"]
    assert device == f"cpu ({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()})"


class Recorder(torch.nn.Module):
    def forward(self, a, b, normalize):
        self.inputs = (a, b, normalize)
        return torch.zeros(len(a), 1, 1, 1)


def test_official_lpips_protocol_remaps_signed_images_as_pyiqa_does():
    recorder, images = Recorder(), torch.rand(2, 3, 8, 8) * 2 - 1
    lpips_distance(recorder, images, images, protocol="official")
    assert torch.allclose(recorder.inputs[0], 2 * images - 1) and recorder.inputs[2] is False
    lpips_distance(recorder, images, images)
    assert torch.equal(recorder.inputs[1], images)


def test_evaluation_rows_name_their_lpips_and_rfid_protocols():
    config = smoke_scale(TokenizerTraining("cifar10", "vanilla", 16, VQVAEConfig(32)))
    model = build_model(config)
    data = image_dataset("shapes", "test", root=None, resolution=32, train_augment=False, seed=0)
    subset = torch.utils.data.Subset(data, range(8))
    project = evaluate_tokenizer(model, subset, batch_size=8, device=torch.device("cpu"))
    official = evaluate_tokenizer(model, subset, batch_size=8, device=torch.device("cpu"), protocol="official")
    assert project["lpips_protocol"].startswith("lpips 0.1") and "torch-fidelity" in project["rfid_protocol"]
    assert official["rfid_protocol"].startswith("official: clean-fid")
    assert official["rfid_note"].startswith("not available") or official["rfid_note"] == ""
    assert project["code_dist_euclid_used"] > 0


def test_ffhq_data_label_names_the_source_resolution(tmp_path):
    Image.new("RGB", (1024, 1024)).save(tmp_path / "00000.png")
    config = TokenizerTraining("ffhq", "vanilla", 16, VQVAEConfig(256), data_root=str(tmp_path))
    assert describe_data(config).startswith("FFHQ (1024 px source), 256 px")


def test_pretrained_arm_adds_its_autoencoder_phase_and_restarts_the_optimizer():
    deferred, pretrained = QuantizationSchedule("deferred", 5), QuantizationSchedule("pretrained", 5)
    assert (deferred.total_steps(10), pretrained.total_steps(10)) == (10, 15)
    assert (deferred.fresh_optimizer, pretrained.fresh_optimizer) == (False, True)
    config = TokenizerTraining("cifar10", "ema", 16, VQVAEConfig(32), epochs=3, schedule="pretrained", warmup_epochs=2)
    assert config.total_epochs == 5 and "2 autoencoder + 3 quantized epochs" in describe_data(config)
    result = train_synthetic(SyntheticTraining(2, "pretrained", steps=20, warmup_steps=10))
    assert result.history[-1]["step"] == 29 and result.history[-1]["quantized"]


def test_ema_codes_set_by_kmeans_start_with_the_named_count():
    for count in (1.0, 0.0):
        quantizer = build_quantizer(quantizer_config("ema", 4, 2, set_count=count))
        quantizer.set_codebook(torch.randn(4, 2))
        assert torch.all(quantizer.cluster_size == count)


def test_spread_of_used_codes_ignores_the_codes_never_assigned():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [100.0, 100.0]])
    used = used_code_distances(codebook, torch.tensor([3, 5, 0]))
    assert used["code_dist_euclid_used"] == pytest.approx(codebook_distances(codebook[:2])["code_dist_euclid"])
    assert torch.isnan(torch.tensor(used_code_distances(codebook, torch.tensor([1, 0, 0]))["code_dist_euclid_used"]))


def write_archive(path: Path, members: dict[str, Image.Image | str]) -> Path:
    """A .tar.gz holding the given images and text files, as the shared/data copies are laid out."""
    staging = path.parent / (path.name + ".d")
    for name, content in members.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content)
        else:
            content.save(target)
    with tarfile.open(path, "w:gz") as tar:
        for top in staging.iterdir():
            tar.add(top, arcname=top.name)
    return path


def square(value: int, size: int = 32) -> Image.Image:
    return Image.new("RGB", (size, size), (value, value, value))


def test_shared_copies_load_with_their_layouts(tmp_path):
    cache = tmp_path / "cache"
    cifar = write_archive(
        tmp_path / "cifar10-lossless.tar.gz",
        {
            f"cifar10/{split}/{c}/{i}.webp": square(i)
            for split in ("train", "test")
            for c in ("cat", "dog")
            for i in (1, 2)
        },
    )
    train = image_dataset(
        "cifar10-lossless", "train", root=cifar, resolution=32, train_augment=True, seed=0, cache_dir=cache
    )
    assert len(train) == 4 and train.classes == ("cat", "dog") and train[0][0].shape == (3, 32, 32)

    tiny = write_archive(
        tmp_path / "tinyimagenet200-32px-jpeg.tar.gz",
        {
            "tinyimagenet32/wnids.txt": "n02\nn01\n",
            "tinyimagenet32/train/n01/images/a.JPEG": square(10),
            "tinyimagenet32/train/n02/images/b.JPEG": square(200),
            "tinyimagenet32/val/images/val_0.JPEG": square(200),
            "tinyimagenet32/val/images/val_1.JPEG": square(10),
            "tinyimagenet32/val/val_annotations.txt": "val_0.JPEG\tn02\t0\t0\t1\t1\nval_1.JPEG\tn01\t0\t0\t1\t1\n",
        },
    )
    val = image_dataset(
        "tinyimagenet32", "test", root=tiny, resolution=32, train_augment=False, seed=0, cache_dir=cache
    )
    assert [val[i][1] for i in range(2)] == [1, 0] and val.classes == ("n01", "n02")

    faces = write_archive(
        tmp_path / "celeba10k-89x109-jpeg.tar.gz",
        {f"celeba10k/celebA/{i:06d}.jpg": Image.new("RGB", (89, 109)) for i in range(3)},
    )
    face = image_dataset("celeba10k", "test", root=faces, resolution=64, train_augment=False, seed=0, cache_dir=cache)
    assert len(face) == 3 and face[0][0].shape == (3, 64, 64)

    odir = write_archive(
        tmp_path / "odir-fundus-256-jpeg.tar.gz",
        {f"odir256/{c}/{i}_left.jpg": square(i, 64) for c in ("normal", "glaucoma") for i in range(50)},
    )
    splits = {
        s: image_dataset("odir256", s, root=odir, resolution=64, train_augment=False, seed=0, cache_dir=cache)
        for s in ("train", "test")
    }
    assert (len(splits["train"]), len(splits["test"])) == (70, 10)
    assert not set(splits["train"].images.files) & set(splits["test"].images.files)


def test_loader_workers_yield_the_same_batches_as_the_main_process(tmp_path):
    Image.new("RGB", (40, 48), (9, 99, 199)).save(tmp_path / "a.png")
    for index in range(15):
        Image.new("RGB", (40 + index, 48), (index * 16, 50, 200 - index * 8)).save(tmp_path / f"{index:02d}.png")
    data = image_dataset("ffhq", "train", root=tmp_path, resolution=32, train_augment=True, seed=3)  # random crops
    data.set_epoch(2)
    batches = [list(range(start, start + 4)) for start in range(0, 16, 4)]

    def load(workers: int) -> list[torch.Tensor]:
        loader = torch.utils.data.DataLoader(data, batch_sampler=batches, num_workers=workers)
        return [images for images, _ in loader]

    assert all(torch.equal(a, b) for a, b in zip(load(0), load(2), strict=True))
