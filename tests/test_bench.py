"""`bench --paper-timing`: the Wasserstein VQ revision's timing table, timed by the same code at a size that runs
in seconds, beside the published seconds read from data/published/wvq_timing.csv."""

import json

import pandas as pd

from replicate.bench import published_timing
from replicate.cli import main


def test_paper_timing_times_each_published_method_beside_its_published_seconds(capsys):
    published = published_timing()
    assert len(published) == 12 and set(published["K"]) == {16384, 50000, 100000}
    assert set(published["method"]) == {"vanilla", "ema", "online", "wasserstein"}
    # one pass each at a tiny K and N: nothing published there; then the table's K and N with two methods
    assert main(["bench", "--paper-timing", "--json", "--K", "64", "--N", "256", "--iterations", "1"]) == 0
    tiny = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["method"] for r in tiny] == ["vanilla", "ema", "online", "wasserstein"]
    assert all(r["seconds"] > 0 and r["published_seconds"] is None and r["iterations"] == 1 for r in tiny)
    assert tiny[0]["seconds_x_vanilla"] == 1.0
    arguments = ["--K", "16384", "--iterations", "1", "--methods", "vanilla,wasserstein"]
    assert main(["bench", "--paper-timing", "--json", *arguments]) == 0
    rows = pd.DataFrame([json.loads(line) for line in capsys.readouterr().out.splitlines()])
    assert rows["N"].tolist() == [8192, 8192] and rows["d"].tolist() == [8, 8]
    assert rows["published_seconds"].tolist() == [0.184, 0.294]  # as printed in the revision's table
    assert rows["published_x_vanilla"].tolist() == [1.0, 0.294 / 0.184]
    assert main(["bench", "--paper-timing", *arguments]) == 0  # the table says whose machine timed what
    table = capsys.readouterr().out
    assert "published: the authors' GPU (not named); ours: this machine's cpu" in table
    assert "ratios between methods do" in table
