"""admission.maxAdmissionsPerPass against a real kube-apiserver: a pass that admits more
than its share writes the first of them, in its order, and the passes after it the rest.
(S2 in docs/benchmarks.md: a pass of 6,000 admissions held every later decision back for
5 minutes while it wrote them.) The operator runs as a subprocess, as in production."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cadre_process import EXAMPLE_CONFIG, operator_kubeconfig, running_operator
from localcluster import LocalCluster
from trainingjobs import TJS, get, trainingjob
from waiting import eventually

pytestmark = pytest.mark.integration


def test_admissions_beyond_a_passs_share_are_made_by_the_next_passes(
    apiserver: LocalCluster, namespace: str, team: str, t4_node: str, tmp_path: Path
) -> None:
    # Four one-GPU jobs, the team's whole quota, there before the operator starts: its
    # first pass admits all four and may apply one.
    names = [f"batch-{i}" for i in range(4)]
    for name in names:
        apiserver.api.create(TJS.format(ns=namespace), trainingjob(name, workers=1))
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["admission"]["maxAdmissionsPerPass"] = 1
    path = tmp_path / "operator-config.yaml"
    path.write_text(yaml.safe_dump(config))
    kubeconfig = operator_kubeconfig(apiserver, tmp_path / "kubeconfig")
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    with running_operator(kubeconfig, tmp_path / "op", path) as op:

        def admitted() -> list[str]:
            return [
                name
                for name in names
                if (
                    (get(apiserver, f"{TJS.format(ns=namespace)}/{name}") or {}).get("status") or {}
                ).get("phase")
                == "Admitted"
            ]

        eventually("all four admitted", lambda: admitted() == names, timeout=60)
        for name in names:
            assert get(apiserver, f"{jobs}/{name}") is not None
        # One pass could not have: 3 + 2 + 1 were left to the next passes.
        assert (op.metric("cadre_admission_deferred_total") or 0) >= 6
        assert op.metric("cadre_admission_decisions_total", decision="admit") == len(names)
        assert op.alive(), op.log_tail()
