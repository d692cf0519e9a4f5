"""-q hides progress bars on every command that draws one (not only the log lines)."""

from __future__ import annotations

import logging

import pytest

from totalseg.cli.app import main


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_hides_the_progress_bar(quiet: bool, tmp_path, capsys) -> None:
    args = ["phantom", "cohort", "--n", "1", "--out", str(tmp_path), "--spacing-mm", "10"]
    assert main([*args, "-q"] if quiet else args) == 0
    err = capsys.readouterr().err
    assert ("cohort (stats)" in err) is not quiet  # the bar's description
    logging.getLogger("totalseg").setLevel(logging.WARNING)
