"""Every field the builders emit exists in the Kubernetes API, for any valid spec.

The builders themselves never import the Kubernetes client; this test uses its generated
models only as a schema: each key must be a known field of its type, each leaf of the
right JSON type. It catches a misspelt field that the API server would silently drop.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes.client
import yaml
from builders_fixtures import ROOT, children, config, minimal, worker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadre.core.training import LABEL_TEAM, LABEL_TRAININGJOB, as_spec, gang_request
from cadre.core.units.quantity import to_bytes, to_millicores

_SCALARS: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "object": (str, int),  # IntOrString (targetPort) and similar
}


def check_shape(value: Any, type_name: str, path: str = "") -> None:
    # The generated client spells containers list[X] / dict(str, X) or List[X] / Dict[str, X].
    if listed := re.fullmatch(r"[lL]ist\[(.+)\]", type_name):
        assert isinstance(value, list), path
        for i, item in enumerate(value):
            check_shape(item, listed.group(1), f"{path}[{i}]")
    elif mapped := re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name):
        assert isinstance(value, dict), path
        for key, item in value.items():
            assert isinstance(key, str), path
            check_shape(item, mapped.group(1) or mapped.group(2), f"{path}.{key}")
    elif type_name in _SCALARS:
        assert not (type_name == "int" and isinstance(value, bool)), path
        assert isinstance(value, _SCALARS[type_name]), f"{path}: {value!r} is not {type_name}"
    else:
        model = getattr(kubernetes.client, type_name)
        assert isinstance(value, dict), path
        by_wire = {wire: attr for attr, wire in model.attribute_map.items()}
        for key, item in value.items():
            assert key in by_wire, f"{path}.{key} is not a field of {type_name}"
            check_shape(item, model.openapi_types[by_wire[key]], f"{path}.{key}")


def check_children(body: dict[str, Any], team: str | None = "vision") -> None:
    built = children(body, team=team)
    check_shape(built.job, "V1Job")
    if built.service is not None:
        check_shape(built.service, "V1Service")


def test_examples_have_only_known_fields() -> None:
    for name in ("trainingjob-single-gpu.yaml", "trainingjob-pytorch.yaml"):
        check_children(yaml.safe_load((ROOT / "examples" / name).read_text(encoding="utf-8")))


def test_shape_checker_catches_a_typo() -> None:
    built = children(minimal())
    built.job["spec"]["podFailurPolicy"] = {}
    try:
        check_shape(built.job, "V1Job")
    except AssertionError as err:
        assert "podFailurPolicy" in str(err)
    else:  # pragma: no cover
        raise AssertionError("typo not caught")


FLAVOURS = [f.name for f in config().flavors]

resources = st.one_of(
    st.builds(
        lambda flavor, gpus, cpu, mem: {
            "flavor": flavor,
            "gpus": gpus,
            **({"cpu": cpu} if cpu is not None else {}),
            **({"memory": mem} if mem is not None else {}),
        },
        st.sampled_from(FLAVOURS),
        st.integers(0, 8),
        st.one_of(st.none(), st.sampled_from(["500m", "4", 2, "1.5"])),
        st.one_of(st.none(), st.sampled_from(["16Gi", "512Mi", "1G", 1024])),
    ),
    st.just({"cpu": "1"}),
)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "workers": draw(st.integers(1, 64)),
        "resources": draw(resources),
        "distribution": draw(st.sampled_from(["None", "PyTorch"])),
        "command": draw(
            st.sampled_from([None, ["python", "t.py"], ["torchrun", "t.py"], ["bash", "-c", "x"]])
        ),
    }
    if spec["distribution"] == "PyTorch" and draw(st.booleans()):
        spec["pytorch"] = {"procsPerWorker": draw(st.integers(1, 8)), "port": 29400}
    if draw(st.booleans()):
        spec["maxRuntime"] = draw(st.sampled_from(["1s", "30m", "2h", "1h0.5s"]))
    if draw(st.booleans()):
        spec["checkpoint"] = {"volumeClaim": "ckpt"}
    if draw(st.booleans()):
        spec["podMetadata"] = {"labels": {LABEL_TEAM: "x", "a": "b"}, "annotations": {"c": "d"}}
    return minimal(**spec)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=specs(), team=st.sampled_from(["vision", None]))
def test_any_valid_spec_builds_a_well_formed_gang(body: dict[str, Any], team: str | None) -> None:
    check_children(body, team)
    built = children(body, team=team)
    assert built == children(body, team=team)
    job = built.job["spec"]
    workers = body["spec"]["workers"]
    assert job["completions"] == job["parallelism"] == workers
    assert job["suspend"] is True and job["backoffLimit"] == 0
    labels = job["template"]["metadata"]["labels"]
    assert labels[LABEL_TRAININGJOB] == "tj"
    assert labels.get(LABEL_TEAM) == team
    # What admission counts is what the pod asks for.
    request = gang_request(as_spec(body))
    requests = worker(built.job).get("resources", {}).get("requests", {})
    assert request.pods == workers
    assert request.cpu_milli_per_pod == (to_millicores(requests["cpu"]) if "cpu" in requests else 0)
    assert request.memory_bytes_per_pod == (
        to_bytes(requests["memory"]) if "memory" in requests else 0
    )
    assert request.gpus_per_pod == int(requests.get("nvidia.com/gpu", 0))
