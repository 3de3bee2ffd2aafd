"""Image metrics against scikit-image and torch-fidelity references, closed forms and hand computations."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import color, data, filters, metrics, transform
from torch import nn

from replicate.metrics.image import (
    ALEXNET_FILE,
    INCEPTION_FILE,
    INCEPTION_WEIGHTS_ENV,
    LPIPS_WEIGHTS_ENV,
    ImageMetrics,
    RFIDAccumulator,
    frechet_distance_of_features,
    load_inception,
    load_lpips,
    lpips_distance,
    psnr_y,
    rec_mse,
    ssim,
    to_uint8,
)


def _originals(size: int = 64) -> np.ndarray:
    """astronaut's face and chelsea's head, square crops resized to size x size: (2, size, size, 3) in [0, 1]."""
    crops = [data.astronaut()[:256, 128:384], data.chelsea()[:, 75:375]]
    return np.stack([transform.resize(crop, (size, size), anti_aliasing=True) for crop in crops])


def _reconstruct(originals: np.ndarray, kind: str) -> np.ndarray:
    if kind == "noisy":
        noise = np.random.default_rng(0).normal(0, 0.05, originals.shape)
        return np.clip(originals + noise, 0, 1)
    return np.stack([filters.gaussian(image, sigma=1, channel_axis=-1) for image in originals])


def _tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) in [0, 1] -> (B, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2) * 2 - 1


@pytest.mark.parametrize("kind", ["noisy", "blurred"])
def test_psnr_of_the_luma_channel_agrees_with_scikit_image(kind):
    originals = _originals()
    reconstructions = _reconstruct(originals, kind)
    ours = psnr_y(_tensor(reconstructions), _tensor(originals), eps=0)
    for index in range(len(originals)):
        luma_reconstruction = color.rgb2ycbcr(reconstructions[index])[..., 0] / 255  # Y in [16, 235] / 255
        luma_original = color.rgb2ycbcr(originals[index])[..., 0] / 255
        reference = metrics.peak_signal_noise_ratio(luma_original, luma_reconstruction, data_range=1)
        assert abs(float(ours[index]) - reference) < 1e-9  # measured: < 1e-12 dB


@pytest.mark.parametrize("kind", ["noisy", "blurred"])
def test_ssim_agrees_with_scikit_images_gaussian_ssim(kind):
    """skimage filters the whole image (reflect mode) and crops 5 pixels, which leaves exactly the valid region."""
    originals = _originals()
    reconstructions = _reconstruct(originals, kind)
    ours = ssim(_tensor(reconstructions), _tensor(originals))
    for index in range(len(originals)):
        reference = metrics.structural_similarity(
            originals[index],
            reconstructions[index],
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
            channel_axis=-1,
        )
        assert abs(float(ours[index]) - reference) < 1e-9  # measured: < 1e-14


def test_ssim_of_large_images_is_computed_after_average_pooling_as_piq_does():
    original = data.astronaut() / 255  # 512 x 512: piq pools by round(512 / 256) = 2
    reconstruction = _reconstruct(original[None], "noisy")[0]
    ours = float(ssim(_tensor(reconstruction[None]), _tensor(original[None]))[0])
    pooled = [transform.downscale_local_mean(image, (2, 2, 1)) for image in (original, reconstruction)]
    reference = metrics.structural_similarity(
        *pooled, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
    )
    assert abs(ours - reference) < 1e-9


def test_rec_mse_is_the_per_image_mse_of_the_clamped_reconstruction():
    originals = torch.zeros(2, 3, 16, 16)
    reconstructions = torch.stack([torch.full((3, 16, 16), 0.5), torch.full((3, 16, 16), 3.0)])  # 3.0 -> 1.0
    assert rec_mse(reconstructions, originals).tolist() == [0.25, 1.0]


def test_identical_images_give_ssim_one_and_the_documented_psnr():
    images = _tensor(_originals(32))
    assert torch.allclose(ssim(images, images), torch.ones(2, dtype=torch.float64), atol=1e-12)
    assert psnr_y(images, images).tolist() == pytest.approx([80.0, 80.0])  # 10 log10(1 / 1e-8), pyiqa's eps
    assert torch.isinf(psnr_y(images, images, eps=0)).all()
    assert rec_mse(images, images).tolist() == [0.0, 0.0]


def test_reconstructions_are_clamped_before_every_metric():
    originals = torch.rand(2, 3, 24, 24) * 2 - 1
    reconstructions = originals * 1.5
    for metric in (psnr_y, ssim, rec_mse):
        assert torch.equal(metric(reconstructions, originals), metric(reconstructions.clamp(-1, 1), originals))


def test_streamed_image_metrics_equal_one_pass_over_all_images():
    originals = torch.rand(7, 3, 32, 32) * 2 - 1
    reconstructions = originals + 0.1 * torch.randn_like(originals)
    streamed, at_once = ImageMetrics(), ImageMetrics()
    for reconstruction, original in zip(reconstructions.split(3), originals.split(3), strict=True):
        streamed.add(reconstruction, original)
    at_once.add(reconstructions, originals)
    assert streamed.result() == pytest.approx(at_once.result(), rel=1e-12)
    assert at_once.result()["psnr"] == pytest.approx(float(psnr_y(reconstructions, originals).mean()), rel=1e-12)
    assert math.isnan(ImageMetrics().result()["ssim"])


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """torch hub's cache pointed at an empty folder and the weights variables unset, so that this machine's
    weights cannot interfere."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(LPIPS_WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    return hub


@pytest.fixture
def alexnet_file(tmp_path):
    """The `features.*` entries of a random torchvision AlexNet, as in alexnet-owt-7be5be79.pth (whose classifier
    entries lpips does not use, left out to keep the file 10 MB)."""
    import torchvision

    path = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).features.state_dict(prefix="features."), path)
    return path


def test_lpips_loads_the_trunk_from_a_local_file_and_gives_zero_for_identical_images(alexnet_file):
    import lpips

    model, source = load_lpips(alexnet_file)
    assert source == str(alexnet_file)
    trunk = torch.load(alexnet_file, weights_only=True)
    loaded = model.net.state_dict()
    assert torch.equal(loaded["slice1.0.weight"], trunk["features.0.weight"])
    assert torch.equal(loaded["slice5.10.bias"], trunk["features.10.bias"])
    linear = torch.load(f"{lpips.__path__[0]}/weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    assert torch.equal(model.lin0.model[1].weight, linear["lin0.model.1.weight"])  # the v0.1 layers, not random
    originals = torch.rand(2, 3, 64, 64) * 2 - 1
    distances = lpips_distance(model, originals + 0.2 * torch.randn_like(originals), originals)
    assert distances.shape == (2,) and torch.isfinite(distances).all() and (distances > 0).all()
    assert lpips_distance(model, originals, originals).tolist() == [0.0, 0.0]


def test_lpips_finds_the_weights_in_torch_hubs_cache(alexnet_file, empty_hub):
    (empty_hub / "checkpoints").mkdir(parents=True)
    alexnet_file.rename(empty_hub / "checkpoints" / ALEXNET_FILE)
    model, source = load_lpips()
    assert model is not None and source == str(empty_hub / "checkpoints" / ALEXNET_FILE)


def test_lpips_finds_the_weights_at_the_variable_and_else_in_the_cache(alexnet_file, empty_hub, monkeypatch):
    monkeypatch.setenv(LPIPS_WEIGHTS_ENV, str(alexnet_file))
    model, source = load_lpips()
    assert model is not None and source == str(alexnet_file)
    (empty_hub / "checkpoints").mkdir(parents=True)
    alexnet_file.rename(empty_hub / "checkpoints" / ALEXNET_FILE)  # the variable now names a missing file
    model, source = load_lpips()
    assert model is not None and source == str(empty_hub / "checkpoints" / ALEXNET_FILE)


@pytest.mark.parametrize(
    "loader,variable,file_name",
    [(load_lpips, LPIPS_WEIGHTS_ENV, ALEXNET_FILE), (load_inception, INCEPTION_WEIGHTS_ENV, INCEPTION_FILE)],
)
def test_absent_weights_give_none_and_a_reason_without_machine_paths(
    loader, variable, file_name, empty_hub, tmp_path, monkeypatch
):
    expected = f"not computed: weights unavailable ({file_name} not at ${variable} nor in the torch hub cache)"
    assert loader() == (None, expected)
    monkeypatch.setenv(variable, str(tmp_path / "missing.pth"))
    assert loader() == (None, expected)
    model, reason = loader(tmp_path / "missing.pth")
    assert model is None and reason == f"not computed: weights unavailable ({file_name} not at the weights_path given)"


def test_evaluation_rows_hold_numbers_in_metric_columns_and_reasons_in_notes(alexnet_file, empty_hub, monkeypatch):
    from replicate.configs import VQVAEConfig
    from replicate.models.vqvae import VQVAE
    from replicate.quantize import build_quantizer, quantizer_config
    from replicate.train.evaluate import evaluate_tokenizer

    model = VQVAE(VQVAEConfig(32, channels=8), build_quantizer(quantizer_config("vanilla", 16, 8)))
    data = torch.utils.data.TensorDataset(torch.rand(4, 3, 32, 32) * 2 - 1, torch.zeros(4))
    row = evaluate_tokenizer(model, data, batch_size=2, device=torch.device("cpu"))
    assert math.isnan(row["lpips"]) and math.isnan(row["rfid"])
    assert row["lpips_note"] == load_lpips()[1] and row["rfid_note"] == load_inception()[1]
    assert row["lpips_note"].startswith("not computed") and str(empty_hub) not in row["lpips_note"] + row["rfid_note"]
    monkeypatch.setenv(LPIPS_WEIGHTS_ENV, str(alexnet_file))
    row = evaluate_tokenizer(model, data, batch_size=2, device=torch.device("cpu"))
    assert isinstance(row["lpips"], float) and row["lpips"] > 0 and row["lpips_note"] == ""
    assert all(isinstance(value, float) for key, value in row.items() if not key.endswith(("_note", "_protocol")))


def test_frechet_distance_of_a_scaled_and_shifted_copy_has_its_closed_form():
    """B = c A + s: mu_B = c mu_A + s and S_B = c^2 S_A exactly, so FID = ||(c - 1) mu_A + s||^2 + (1 - c)^2 tr S_A."""
    features = torch.randn(300, 16, dtype=torch.float64) @ torch.randn(16, 16, dtype=torch.float64)
    scale, shift = 0.7, torch.linspace(-1, 1, 16, dtype=torch.float64)
    expected = float(((scale - 1) * features.mean(0) + shift).square().sum())
    expected += (1 - scale) ** 2 * float(torch.cov(features.T).trace())
    assert frechet_distance_of_features(features, scale * features + shift) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance_of_features(features, features) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_agrees_with_torch_fidelity():
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    features_a = torch.randn(500, 32, dtype=torch.float64)
    features_b = 0.5 + torch.randn(500, 32, dtype=torch.float64) @ torch.randn(32, 32, dtype=torch.float64) / 4
    reference = fid_statistics_to_metric(
        fid_features_to_statistics(features_a), fid_features_to_statistics(features_b), verbose=False
    )["frechet_inception_distance"]
    assert frechet_distance_of_features(features_a, features_b) == pytest.approx(reference, rel=1e-10)


class _PooledColours(nn.Module):
    """A stand-in extractor with torch-fidelity's interface: uint8 images in, a 1-tuple of (B, 12) features out."""

    def forward(self, images):
        assert images.dtype == torch.uint8
        return (F.adaptive_avg_pool2d(images.float(), 2).flatten(1),)


def test_streamed_rfid_equals_the_distance_of_all_features_and_is_zero_for_identical_sets():
    originals = torch.rand(40, 3, 16, 16) * 2 - 1
    reconstructions = originals + 0.3 * torch.randn_like(originals)
    streamed, same = RFIDAccumulator(_PooledColours()), RFIDAccumulator(_PooledColours())
    for reconstruction, original in zip(reconstructions.split(16), originals.split(16), strict=True):
        streamed.add(reconstruction, original)
        same.add(original, original)
    (features_r,), (features_o,) = _PooledColours()(to_uint8(reconstructions)), _PooledColours()(to_uint8(originals))
    assert streamed.result() == pytest.approx(frechet_distance_of_features(features_r, features_o), rel=1e-9)
    assert streamed.result() > 0
    assert same.result() == pytest.approx(0, abs=1e-8)


def test_uint8_conversion_rounds_as_png_writing_does():
    images = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.999, 1.0, 2.0])
    assert to_uint8(images).tolist() == [0, 0, 0, 128, 255, 255, 255]


def test_inception_extractor_loads_from_a_local_file(tmp_path, monkeypatch):
    """torch-fidelity's constructor always loads weights; skipping that once gives a random-weight file to load."""
    from torch_fidelity import feature_extractor_inceptionv3 as inception

    path = tmp_path / "inception.pth"
    with monkeypatch.context() as patch:
        patch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state_dict: None)
        random_weights = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(random_weights.state_dict(), path)
    extractor, source = load_inception(path)
    assert source == str(path)
    assert torch.equal(extractor.fc.weight, random_weights.fc.weight)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    (features,) = extractor(to_uint8(torch.cat([image, image])))
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert torch.equal(features[0], features[1])
