"""The registry: experiment name -> Experiment. run_all.sh, the command line and the tests iterate over it."""

from __future__ import annotations

from replicate.experiments import (
    beyond,
    dq_cifar,
    dq_synthetic,
    generation,
    wvq_fig3,
    wvq_fig12,
    wvq_quantitative,
    wvq_table3,
    wvq_table4,
    wvq_theory,
    wvq_twopeak,
    wvq_vqvae,
    xp_synthetic,
)
from replicate.spec import Experiment

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        wvq_table4.EXPERIMENT,
        wvq_fig3.EXPERIMENT,
        wvq_quantitative.FIG10,
        wvq_quantitative.FIG11,
        wvq_fig12.EXPERIMENT,
        wvq_theory.EXPERIMENT,
        dq_synthetic.EXPERIMENT,
        xp_synthetic.EXPERIMENT,
        *wvq_vqvae.TABLES,
        wvq_table3.EXPERIMENT,
        dq_cifar.EXPERIMENT,
        generation.DQ_GENERATION,
        generation.WVQ_GENERATION,
        beyond.NONGAUSSIAN,
        beyond.DENSITY,
        wvq_twopeak.EXPERIMENT,
    )
}
