"""How a PyTorch worker's command goes through torchrun."""

from __future__ import annotations

import pytest
from builders_fixtures import children, minimal, worker

from cadre.core.training import torchrun_command

KEPT = [
    ["torchrun", "train.py"],
    ["/opt/venv/bin/torchrun", "--nnodes=2", "t.py"],
    ["python", "-m", "torch.distributed.run", "t.py"],
    ["python3.11", "-m", "torch.distributed.launch", "t.py"],
    ["bash", "-c", "pip install x && torchrun t.py"],
    ["/bin/sh", "run.sh"],
]
WRAPPED = [
    ["python", "train.py"],
    ["python", "-u", "train.py"],
    ["python", "-m", "mypkg.train"],
    ["/app/train"],
]


@pytest.mark.parametrize("command", KEPT)
def test_launchers_and_shells_are_kept(command: list[str]) -> None:
    assert torchrun_command(command) == command


@pytest.mark.parametrize("command", WRAPPED)
def test_other_commands_run_under_torchrun_no_python(command: list[str]) -> None:
    assert torchrun_command(command) == ["torchrun", "--no-python", *command]


def test_image_entrypoint_is_not_wrapped() -> None:
    assert torchrun_command(None) is None


def test_args_follow_the_wrapped_command_unchanged() -> None:
    job = children(
        minimal(distribution="PyTorch", workers=2, command=["python", "train.py"], args=["--lr=3"])
    ).job
    assert worker(job)["command"] == ["torchrun", "--no-python", "python", "train.py"]
    assert worker(job)["args"] == ["--lr=3"]


def test_no_distribution_never_wraps() -> None:
    job = children(minimal(workers=2, command=["python", "train.py"])).job
    assert worker(job)["command"] == ["python", "train.py"]
