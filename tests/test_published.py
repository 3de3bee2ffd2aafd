"""Published numbers are stored as printed: no float noise left by arithmetic such as 2.7 / 100."""

import csv

import pytest

from replicate.results import PUBLISHED


def is_float_noise(text: str) -> bool:
    """A number written with more than 10 significant digits that lies within 1e-12 of one with at most 10:
    0.027000000000000003 (2.7 / 100) is noise; 14736.3994140625, a float32 value as the official CSVs print it
    (wvq_fig12.csv), is 3e-10 from its 10-digit rounding and is not."""
    try:
        value = float(text)
    except ValueError:
        return False
    short = float(f"{value:.10g}")
    return short != value and abs(short - value) <= 1e-12 * abs(value)


EXAMPLES = {"0.027000000000000003": True, "0.7659999999999999": True, "0.027": False, "527.2": False}
EXAMPLES |= {"14736.3994140625": False, "0.9998779296875": False, "nan": False, "Vanilla VQ": False}


@pytest.mark.parametrize("text,noise", EXAMPLES.items())
def test_the_noise_rule_flags_arithmetic_residue_only(text, noise):
    assert is_float_noise(text) is noise


def test_published_csvs_hold_numbers_as_printed():
    paths = sorted(PUBLISHED.glob("*.csv"))
    assert paths, f"no published CSVs under {PUBLISHED}"
    noisy = []
    for path in paths:
        with path.open(newline="") as file:
            rows = list(csv.reader(file))
        for line, row in enumerate(rows[1:], start=2):
            noisy += [f"{path.name}:{line}: {field}" for field in row if is_float_noise(field)]
    assert not noisy, "float noise instead of the printed value:\n" + "\n".join(noisy)
