"""codeformer.cli.args: the parser and the checks of values argparse cannot make."""

from __future__ import annotations

import pytest
import torch
from helpers import gradient

from codeformer.cli import main
from codeformer.cli.outputs import write_image


def test_cli_bad_arguments_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["restore", str(tmp_path), "-o", str(tmp_path / "out"), "--fidelity", "high"])
    assert info.value.code == 2
    assert main(["restore", str(tmp_path), "-o", str(tmp_path / "out"), "--upscale", "100"]) == 2
    assert "--upscale 100" in (err := capsys.readouterr().err) and "outside 1..8" in err


def test_devices_this_machine_lacks_are_refused_before_any_work(tmp_path, capsys):
    write_image(tmp_path / "a.png", gradient(8, 8))
    run = ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]
    bad = [("mps", "MPS (Apple GPUs) is not available here")] if not torch.backends.mps.is_available() else []
    bad.append((f"cuda:{torch.cuda.device_count()}", "CUDA"))  # one past the last GPU, or no CUDA at all
    for device, message in bad:
        assert main([*run, "--device", device]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --device {device}: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
