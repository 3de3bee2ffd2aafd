"""Image metrics of the official Wasserstein-VQ evaluation (code/*/metric/metric.py, eval_tokenizer.py) on images
of shape (B, 3, H, W) in [-1, 1]; reconstructions are clamped to [-1, 1] first.

psnr:    PSNR of the luma channel, as pyiqa 0.1.11 `psnr(test_y_channel=True, color_space='ycbcr')`.
ssim:    SSIM on RGB in [0, 1], as piq 0.8.0 `ssim(data_range=1, reduction='none')` with its defaults.
rec_mse: the official "Rec. Loss", the MSE in [-1, 1].
lpips:   the lpips package, AlexNet trunk with the LPIPS v0.1 linear layers (pyiqa's 'lpips' is the same network).
rfid:    FID between reconstructions and originals on torch-fidelity's InceptionV3 2048-d pool features.

LPIPS and rFID need pretrained weights. A file not at its variable's path nor in torch hub's cache is fetched from
its published location (WEIGHT_URLS) into that cache, and kept only when its SHA-256 starts with the hash prefix of
its name (torch hub's convention); $VQ_OFFLINE (the --offline option) forbids any download. load_lpips and
load_inception return (None, reason) when there is no file; callers write NaN into the `lpips` / `rfid` result
columns and the reason into `lpips_note` / `rfid_note` ("not computed: weights unavailable (...)", naming the file
and where it was looked for, never a machine path).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from replicate.quantize.gaussian import StreamedGaussianFit, gaussian_fit

if TYPE_CHECKING:
    import lpips
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

PSNR_EPS = 1e-8  # pyiqa 0.1.11 psnr(): 10 log10(1 / (mse + eps)), so identical images score 80 dB, not inf
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03  # piq 0.8.0 ssim() defaults (Wang et al. 2004)
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet, as torch hub caches it
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's URL_INCEPTION_V3, same cache
LPIPS_WEIGHTS_ENV, INCEPTION_WEIGHTS_ENV = "VQ_LPIPS_WEIGHTS", "VQ_INCEPTION_WEIGHTS"  # paths to the two files
VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16: the VQGAN perceptual loss's trunk
OFFLINE_ENV = "VQ_OFFLINE"  # set (to anything but "" or "0"): never download weights
WEIGHT_URLS = {  # where each file is published (torchvision's model URLs; torch-fidelity's URL_INCEPTION_V3)
    ALEXNET_FILE: "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    VGG16_FILE: "https://download.pytorch.org/models/vgg16-397923af.pth",
    INCEPTION_FILE: "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE,
}


def _unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1] in float64 (the official code evaluates (x + 1) / 2)."""
    return (images.double() + 1) / 2


def luma(images: Tensor) -> Tensor:
    """Y of ITU-R BT.601 YCbCr in [16/255, 235/255] from RGB in [0, 1] (MATLAB rgb2ycbcr, as pyiqa and skimage)."""
    weights = images.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return ((images * weights).sum(1, keepdim=True) + 16) / 255


@torch.no_grad()
def psnr_y(reconstructions: Tensor, originals: Tensor, *, eps: float = PSNR_EPS) -> Tensor:
    """Per-image PSNR (dB) of the Y channel with data range 1: 10 log10(1 / (MSE + eps)), float64.

    eps = 1e-8 as pyiqa: identical images give 80 dB; eps = 0 gives the textbook value (inf for identical images).
    """
    error = luma(_unit(reconstructions.clamp(-1, 1))) - luma(_unit(originals))
    return 10 * torch.log10(1 / (error.square().mean((1, 2, 3)) + eps))


def _gaussian_blur_valid(images: Tensor) -> Tensor:
    """Per-channel 11 x 11 Gaussian filter (sigma 1.5) without padding; separable, equal to piq's 2-D window."""
    coords = torch.arange(SSIM_WINDOW, dtype=images.dtype, device=images.device) - (SSIM_WINDOW - 1) / 2
    window = torch.exp(-coords.square() / (2 * SSIM_SIGMA**2))
    window = window / window.sum()
    channels = images.shape[1]
    images = F.conv2d(images, window.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(images, window.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)


@torch.no_grad()
def ssim(reconstructions: Tensor, originals: Tensor) -> Tensor:
    """Per-image SSIM on RGB in [0, 1]: the SSIM map over the valid region, averaged over pixels and channels.

    As piq 0.8.0, images are first average-pooled by f = max(1, round(min(H, W) / 256)) (Python's round, so
    f = 2 from 384 px); 256 x 256 images are not pooled. float64 (piq computes in the input dtype; < 1e-6 apart).
    """
    x, y = _unit(reconstructions.clamp(-1, 1)), _unit(originals)
    factor = max(1, round(min(x.shape[-2:]) / 256))
    if factor > 1:
        x, y = F.avg_pool2d(x, factor), F.avg_pool2d(y, factor)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got {tuple(x.shape)}")
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K L)^2 with data range L = 1
    mu_x, mu_y, xx, yy, xy = _gaussian_blur_valid(torch.cat([x, y, x * x, y * y, x * y], 1)).chunk(5, dim=1)
    var_x, var_y, cov = xx - mu_x.square(), yy - mu_y.square(), xy - mu_x * mu_y
    ssim_map = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return ssim_map.mean((1, 2, 3))


@torch.no_grad()
def rec_mse(reconstructions: Tensor, originals: Tensor) -> Tensor:
    """Per-image MSE in [-1, 1], float64 (the official "Rec. Loss")."""
    return (reconstructions.clamp(-1, 1).double() - originals.double()).square().mean((1, 2, 3))


class ImageMetrics:
    """Streamed per-image averages of psnr (Y channel), ssim and rec_mse: float64 sums and an image count."""

    names = ("psnr", "ssim", "rec_mse")

    def __init__(self) -> None:
        self.totals = torch.zeros(len(self.names), dtype=torch.float64)
        self.count = 0

    def add(self, reconstructions: Tensor, originals: Tensor) -> None:
        per_image = torch.stack([metric(reconstructions, originals) for metric in (psnr_y, ssim, rec_mse)])
        self.totals += per_image.sum(1).cpu()
        self.count += per_image.shape[1]

    def result(self) -> dict[str, float]:
        """Averages over every image added (NaN before the first)."""
        return dict(zip(self.names, (self.totals / self.count).tolist(), strict=True))


def weights_file(weights_path: str | Path | None, variable: str, file_name: str) -> tuple[Path | None, str]:
    """(the weights file, "") or (None, reason): `weights_path` alone when given, else the first file of
    $variable and file_name in torch hub's cache (where torch.hub.load_state_dict_from_url saves it).
    The reason names the places symbolically, so that no machine's path enters a result.
    """
    if weights_path is not None:
        candidates, places = [weights_path], "at the weights_path given"
    else:
        candidates = [os.environ.get(variable), Path(torch.hub.get_dir()) / "checkpoints" / file_name]
        places = f"at ${variable} nor in the torch hub cache"
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate), ""
    reason = f"not computed: weights unavailable ({file_name} not {places})"
    if weights_path is not None or os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return None, reason
    fetched, failure = fetch_weights(file_name, Path(torch.hub.get_dir()) / "checkpoints")
    return (fetched, "") if fetched else (None, f"{reason[:-1]}; {failure})")


def fetch_weights(file_name: str, folder: Path) -> tuple[Path | None, str]:
    """Download WEIGHT_URLS[file_name] to folder/file_name (through a temporary file, renamed only once its SHA-256
    starts with the name's hash prefix); (the file, "") or (None, why not)."""
    import hashlib
    import re
    import urllib.error
    import urllib.request

    url = WEIGHT_URLS[file_name]
    expected = re.search(r"-([0-9a-f]{6,})\.", file_name).group(1)
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{file_name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as file, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                file.write(chunk)
        if not digest.hexdigest().startswith(expected):
            return None, f"the download from {url} has SHA-256 {digest.hexdigest()[:12]}..., not {expected}...: deleted"
        os.replace(temporary, folder / file_name)
        return folder / file_name, ""
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, f"its download from {url} failed: {getattr(error, 'reason', error)}"
    finally:
        Path(temporary).unlink(missing_ok=True)


LPIPS_TRUNKS = {  # trunk -> (torchvision ImageNet weights file as torch hub caches it, the variable naming it)
    "alex": (ALEXNET_FILE, LPIPS_WEIGHTS_ENV),  # the LPIPS metric of the evaluation
    "vgg": (VGG16_FILE, "VQ_VGG16_WEIGHTS"),  # the perceptual loss of a VQGAN (taming, official v1)
}


def load_lpips(weights_path: str | Path | None = None, *, trunk: str = "alex") -> tuple[lpips.LPIPS | None, str]:
    """LPIPS v0.1 with its trunk (AlexNet or VGG16) from torchvision's state dict at `weights_path` (default: the
    trunk's variable, else torch hub's cache) and the linear heads shipped in the lpips package; returns (model in
    eval mode, the file used), or (None, reason) when there is no file (weights_file: fetched where allowed).
    """
    path, reason = weights_file(weights_path, LPIPS_TRUNKS[trunk][1], LPIPS_TRUNKS[trunk][0])
    if path is None:
        return None, reason
    import lpips  # imported here: pulls in torchvision, needed only when the weights exist

    with warnings.catch_warnings():  # lpips builds the trunk with torchvision's deprecated constructors
        warnings.filterwarnings("ignore", message=".*deprecated since 0.13")
        # pnet_rand=True: a randomly initialised trunk instead of torchvision's download; pretrained=True loads the
        # v0.1 linear layers from the weights folder inside the lpips package (use_dropout: active in train mode).
        model = lpips.LPIPS(net=trunk, version="0.1", lpips=True, pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    # lpips splits the trunk's `features` into slices that keep the layer indices: net.slice2.3 = features.3.
    model.net.load_state_dict({key: state["features." + key.split(".", 1)[1]] for key in model.net.state_dict()})
    return model.eval(), str(path)


@torch.no_grad()
def lpips_distance(
    model: lpips.LPIPS, reconstructions: Tensor, originals: Tensor, *, protocol: str = "project"
) -> Tensor:
    """Per-image LPIPS of images in [-1, 1], the range lpips expects (normalize=False); moves the model to their
    device. protocol "official": as the official evaluation, which hands [-1, 1] images to pyiqa's LPIPS (the
    same AlexNet v0.1 network), which maps them again as if they were [0, 1] (2x - 1, so into [-3, 1])."""
    model.to(reconstructions.device)
    reconstructions = reconstructions.clamp(-1, 1)
    if protocol == "official":
        reconstructions, originals = 2 * reconstructions - 1, 2 * originals - 1
    return model(reconstructions, originals, normalize=False).flatten()


PROTOCOLS = {  # how LPIPS and rFID are computed: the project's (default) or the official evaluation's
    "project": (
        "lpips 0.1 AlexNet on [-1, 1] (the official evaluation remaps its inputs: see protocol 'official')",
        "torch-fidelity InceptionV3 pool features, reconstructions vs originals of the evaluation set (the "
        "official rFID is clean-fid vs FFHQ trainval70k statistics)",
    ),
    "official": (
        "official: pyiqa's LPIPS (AlexNet v0.1) on [-1, 1] inputs remapped as if [0, 1]",
        "official: clean-fid 'clean' mode, truncated-uint8 PNG reconstructions vs FFHQ trainval70k statistics",
    ),
}


def official_rfid_unavailable() -> str:
    """ "" when the official rFID protocol can run here (clean-fid installed), else the reason it cannot."""
    try:
        import cleanfid  # noqa: F401
    except ImportError:
        return (
            "not available: the official rFID protocol needs the clean-fid package and its FFHQ trainval70k "
            "statistics (pip install clean-fid, with the statistics in its cache)"
        )
    return ""


def load_inception(weights_path: str | Path | None = None) -> tuple[FeatureExtractorInceptionV3 | None, str]:
    """torch-fidelity's 'inception-v3-compat' extractor of 2048-d pool features from the weights file at
    `weights_path` (default: $VQ_INCEPTION_WEIGHTS, else torch hub's cache); (extractor, the file used) or
    (None, reason) (weights_file: fetched where allowed).
    """
    path, reason = weights_file(weights_path, INCEPTION_WEIGHTS_ENV, INCEPTION_FILE)
    if path is None:
        return None, reason
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3  # heavy; only when needed

    extractor = FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048"],
        feature_extractor_weights_path=str(path),
        feature_extractor_internal_dtype="float32",  # torch-fidelity 0.4.0's default, stated
    )
    return extractor, str(path)


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] -> uint8 0..255 as torchvision.utils.save_image writes PNGs: floor(255 u + 0.5), u = (x + 1) / 2."""
    return ((images.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8)


def frechet_distance(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017, arXiv 1706.08500) in float64;
    the root by scipy.linalg.sqrtm, real part (a singular product leaves tiny imaginary rounding);
    at d = 2048 the root takes ~25 s on 2 busy CPU cores.
    """
    import scipy.linalg  # heavy; only the Fréchet distance needs it

    mean_a, cov_a, mean_b, cov_b = (t.detach().double().cpu().numpy() for t in (mean_a, cov_a, mean_b, cov_b))
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    difference = mean_a - mean_b
    return float(difference @ difference + cov_a.trace() + cov_b.trace() - 2 * root.trace().real)


def frechet_distance_of_features(features_a: Tensor, features_b: Tensor) -> float:
    """Fréchet distance between Gaussian fits (mean, unbiased covariance, as torch-fidelity) of (n, d) features."""
    return frechet_distance(
        *gaussian_fit(features_a.double(), unbiased=True), *gaussian_fit(features_b.double(), unbiased=True)
    )


class RFIDAccumulator:
    """Streamed rFID: float64 Gaussian fits of the extractor's pool features of reconstructions and of originals
    (fed as uint8 images, as torch-fidelity expects); the extractor moves to the images' device."""

    def __init__(self, extractor: nn.Module) -> None:
        self.extractor = extractor
        self.reconstructions = StreamedGaussianFit(unbiased=True)  # unbiased, as torch-fidelity
        self.originals = StreamedGaussianFit(unbiased=True)

    @torch.no_grad()
    def add(self, reconstructions: Tensor, originals: Tensor) -> None:
        self.extractor.to(reconstructions.device)
        for fit, images in ((self.reconstructions, reconstructions), (self.originals, originals)):
            (features,) = self.extractor(to_uint8(images))  # torch-fidelity returns one tensor per requested feature
            fit.add(features)

    def result(self) -> float:
        """FID between everything added (at least two images each)."""
        return frechet_distance(*self.reconstructions.result(), *self.originals.result())


class CleanFIDAccumulator:
    """The official rFID protocol: reconstructions written as truncated-uint8 PNGs (as the official evaluation
    saves them), then clean-fid's "clean" FID against its FFHQ trainval70k statistics at their resolution.
    Needs clean-fid (official_rfid_unavailable); not exercised on this project's CI machines."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vq-replicate-rfid-"))
        self.count, self.resolution = 0, 0

    @torch.no_grad()
    def add(self, reconstructions: Tensor, originals: Tensor) -> None:
        from PIL import Image

        pixels = ((reconstructions.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)  # truncation, not rounding
        self.resolution = pixels.shape[-1]
        for image in pixels.permute(0, 2, 3, 1).cpu().numpy():
            Image.fromarray(image).save(self.folder / f"{self.count:06d}.png")
            self.count += 1

    def result(self) -> float:
        from cleanfid import fid

        try:
            return float(
                fid.compute_fid(
                    str(self.folder),
                    dataset_name="FFHQ",
                    dataset_res=self.resolution,
                    mode="clean",
                    dataset_split="trainval70k",
                )
            )
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
