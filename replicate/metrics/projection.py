"""2-D views of latent spaces for the shrinkage plots: PCA (linear, scale-faithful) and t-SNE (sklearn)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def pca_2d(fit_on: Tensor, *others: Tensor) -> list[Tensor]:
    """Project `fit_on` and every other (n, d) tensor on the top two principal axes of `fit_on` (d >= 2)."""
    fit_on = fit_on.double()
    centre = fit_on.mean(0)
    _, _, right = torch.linalg.svd(fit_on - centre, full_matrices=False)
    axes = right[:2].T
    return [(x.double() - centre) @ axes for x in (fit_on, *others)]


def tsne_2d(points: Tensor, *, seed: int = 0) -> Tensor:
    """t-SNE embedding in 2-D (perplexity 30, PCA initialisation); points in 2-D are returned unchanged."""
    if points.shape[1] <= 2:
        return points.double()
    from sklearn.manifold import TSNE  # heavy (scipy); only the t-SNE figures need it

    embedded = TSNE(n_components=2, perplexity=30, init="pca", random_state=seed).fit_transform(points.double().numpy())
    return torch.from_numpy(np.asarray(embedded))
