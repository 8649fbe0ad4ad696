"""torchrun rendezvous for `distribution: PyTorch`: environment and launcher command.

Semantics (one pod = one torchrun "node"):

- The gang is a static torchrun rendezvous (torchrun's default `--rdzv-backend=static`):
  worker index 0 hosts the TCPStore on MASTER_PORT, every other worker connects to it.
  Ranks are stable because they come from the Indexed Job's completion index, which the
  Job controller keeps for a replaced pod.
- torchrun reads each flag from `PET_<FLAG>` when the flag is absent (torch's
  `argparse_util.env`), so a plain `torchrun train.py` needs no flags:
  PET_NNODES = workers, PET_NPROC_PER_NODE = pytorch.procsPerWorker, else the worker's
  GPUs, else 1; PET_NODE_RANK = the completion index; PET_MASTER_ADDR / PET_MASTER_PORT =
  index 0's stable name and the rendezvous port.
- The classic variables are set too, for scripts and launchers that read them:
  MASTER_ADDR, MASTER_PORT, WORLD_SIZE = workers (nodes, not processes) and
  NODE_RANK = RANK = the completion index. They describe the launcher's view: torchrun
  overwrites WORLD_SIZE and RANK with per-process values (nnodes x nproc, global rank) in
  the processes it starts, which is what `init_process_group()` then sees.
- MASTER_ADDR is `<job>-0.<service>`: the Job controller sets each pod's hostname to
  `<job>-<index>` and the pod's `subdomain` is the headless Service, so the cluster DNS
  serves `<job>-0.<service>.<namespace>.svc.<cluster-domain>`. The short form resolves
  through the pod's first DNS search domain (`<namespace>.svc.<cluster-domain>`, always
  present under the default dnsPolicy ClusterFirst, which Cadre never changes); it does
  not hard-code the cluster domain and needs one lookup instead of three.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import Any, Final

from cadre.core.api.names import COMPLETION_INDEX_ANNOTATION
from cadre.core.api.trainingjob import PyTorchOptions, TrainingJobSpec

TORCHRUN: Final = "torchrun"
# With --no-python torchrun runs the command itself once per local process, instead of
# treating its first word as a Python script (`torchrun python train.py` would fail).
TORCHRUN_PREFIX: Final = (TORCHRUN, "--no-python")

_PYTHON_RE: Final = re.compile(r"^python(\d+(\.\d+)?)?$")
_TORCH_LAUNCH_MODULES: Final = frozenset({"torch.distributed.run", "torch.distributed.launch"})
_SHELLS: Final = frozenset({"sh", "bash", "dash", "ash", "zsh"})

# Every variable Cadre sets for PyTorch; a user's env entry of the same name is dropped.
RENDEZVOUS_ENV: Final = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "NODE_RANK",
    "RANK",
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
)


def pytorch_options(spec: TrainingJobSpec) -> PyTorchOptions:
    """The spec's PyTorch options with their defaults (port 29500)."""
    return spec.pytorch if spec.pytorch is not None else PyTorchOptions()


def procs_per_worker(spec: TrainingJobSpec) -> int:
    """torchrun --nproc-per-node: procsPerWorker, else the worker's GPUs, else 1."""
    explicit = pytorch_options(spec).procs_per_worker
    if explicit is not None:
        return explicit
    return spec.resources.gpus if spec.resources.gpus > 0 else 1


def master_addr(job_name: str, service_name: str | None) -> str:
    """The stable DNS name of worker index 0 (see the module docstring); a single worker
    (no Service) is its own master: the loopback address."""
    if service_name is None:
        return "127.0.0.1"
    return f"{job_name}-0.{service_name}"


def _index_ref(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "valueFrom": {
            "fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}
        },
    }


def rendezvous_env(
    spec: TrainingJobSpec, *, job_name: str, service_name: str | None
) -> list[dict[str, Any]]:
    """The environment of every PyTorch worker, in the order of `RENDEZVOUS_ENV`."""
    addr = master_addr(job_name, service_name)
    port = str(pytorch_options(spec).port)
    nodes = str(spec.workers)
    return [
        {"name": "MASTER_ADDR", "value": addr},
        {"name": "MASTER_PORT", "value": port},
        {"name": "WORLD_SIZE", "value": nodes},
        _index_ref("NODE_RANK"),
        _index_ref("RANK"),
        {"name": "PET_NNODES", "value": nodes},
        {"name": "PET_NPROC_PER_NODE", "value": str(procs_per_worker(spec))},
        _index_ref("PET_NODE_RANK"),
        {"name": "PET_MASTER_ADDR", "value": addr},
        {"name": "PET_MASTER_PORT", "value": port},
    ]


def is_launcher(command: Sequence[str]) -> bool:
    """True when the command already starts torchrun (or its `python -m` form)."""
    if not command:
        return False
    program = posixpath.basename(command[0])
    if program == TORCHRUN:
        return True
    return (
        _PYTHON_RE.match(program) is not None
        and len(command) >= 3
        and command[1] == "-m"
        and command[2] in _TORCH_LAUNCH_MODULES
    )


def torchrun_command(command: Sequence[str] | None) -> list[str] | None:
    """The container command for a PyTorch worker.

    - None (the image's entrypoint) stays None: Cadre cannot wrap what it cannot see; the
      entrypoint is expected to run `torchrun`, which picks up the PET_* variables.
    - A command that already starts torchrun (`torchrun ...`, `/x/bin/torchrun ...`,
      `python -m torch.distributed.run ...`) is kept as is.
    - A shell (`bash -c "..."`, `sh script.sh`) is kept as is: running N copies of a
      wrapper script is never what is meant; the script itself should call `torchrun`.
    - Anything else is prefixed with `torchrun --no-python`, so torchrun starts exactly
      the given command once per local process: [python, train.py] becomes
      [torchrun, --no-python, python, train.py]. The container's `args` follow unchanged.
    """
    if command is None:
        return None
    if not command or is_launcher(command) or posixpath.basename(command[0]) in _SHELLS:
        return list(command)
    return [*TORCHRUN_PREFIX, *command]
