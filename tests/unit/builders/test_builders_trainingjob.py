"""Focused properties of a TrainingJob's Job and Service."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from builders_fixtures import UID, children, config, env_of, example, minimal, worker

from cadre.core.api.trainingjob import TrainingJob
from cadre.core.training import (
    ANNOTATION_SPEC_HASH,
    LABEL_MANAGED_BY,
    LABEL_TEAM,
    LABEL_TRAININGJOB,
    BuildError,
    FlavourRequiredError,
    InvalidTeamError,
    UnknownFlavourError,
    build_headless_service,
    build_job,
    build_training_job_children,
)

INDEX_REF = ("fieldRef", "metadata.annotations['batch.kubernetes.io/job-completion-index']")


def job_of(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return children(body, **kw).job


def test_job_is_created_suspended_indexed_and_never_retries_a_pod() -> None:
    job = job_of(example("trainingjob-pytorch.yaml"))
    spec = job["spec"]
    assert spec["suspend"] is True
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    assert spec["backoffLimit"] == 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert "selector" not in spec and "ttlSecondsAfterFinished" not in spec


def test_names_are_the_trainingjob_name_and_owned_by_it() -> None:
    built = children(example("trainingjob-pytorch.yaml"))
    for obj in built.objects():
        assert obj["metadata"]["name"] == "resnet50-imagenet"
        assert obj["metadata"]["namespace"] == "vision-research"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "cadre.dev/v1alpha1",
                "kind": "TrainingJob",
                "name": "resnet50-imagenet",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    assert built.job["spec"]["template"]["spec"]["subdomain"] == built.service["metadata"]["name"]
    assert [o["kind"] for o in built.objects()] == ["Service", "Job"]


def test_pytorch_ranks_come_from_the_completion_index() -> None:
    env = env_of(job_of(example("trainingjob-pytorch.yaml")))
    for name in ("NODE_RANK", "RANK", "PET_NODE_RANK"):
        assert env[name] == INDEX_REF
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "resnet50-imagenet-0.resnet50-imagenet"
    assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == "29500"
    assert env["WORLD_SIZE"] == env["PET_NNODES"] == "4"
    assert env["PET_NPROC_PER_NODE"] == "8"
    # The user's variables follow Cadre's, so they may refer to them with $(MASTER_ADDR).
    names = [e["name"] for e in worker(job_of(example("trainingjob-pytorch.yaml")))["env"]]
    assert names[-2:] == ["WANDB_PROJECT", "WANDB_API_KEY"]


@pytest.mark.parametrize(
    ("resources", "pytorch", "expected"),
    [
        ({"flavor": "a100", "gpus": 4}, None, "4"),
        ({"flavor": "a100", "gpus": 4}, {"procsPerWorker": 2}, "2"),
        ({"flavor": "cpu-only", "cpu": "8"}, None, "1"),
    ],
)
def test_procs_per_worker_defaults_to_gpus_then_one(
    resources: dict[str, Any], pytorch: dict[str, Any] | None, expected: str
) -> None:
    spec: dict[str, Any] = {"distribution": "PyTorch", "workers": 2, "resources": resources}
    if pytorch is not None:
        spec["pytorch"] = pytorch
    assert env_of(job_of(minimal(**spec)))["PET_NPROC_PER_NODE"] == expected


def test_custom_port_reaches_env_container_and_service() -> None:
    built = children(minimal(distribution="PyTorch", workers=2, pytorch={"port": 23456}))
    assert env_of(built.job)["MASTER_PORT"] == "23456"
    assert worker(built.job)["ports"] == [
        {"name": "rendezvous", "containerPort": 23456, "protocol": "TCP"}
    ]
    assert built.service["spec"]["ports"] == [
        {"name": "rendezvous", "port": 23456, "targetPort": 23456, "protocol": "TCP"}
    ]


def test_user_env_cannot_break_the_rendezvous() -> None:
    body = minimal(
        distribution="PyTorch",
        workers=2,
        env=[{"name": "MASTER_PORT", "value": "1"}, {"name": "KEEP", "value": "me"}],
    )
    env = worker(job_of(body))["env"]
    assert [e["value"] for e in env if e["name"] == "MASTER_PORT"] == ["29500"]
    assert {"name": "KEEP", "value": "me"} in env


def test_a_single_worker_gets_no_service_and_no_subdomain() -> None:
    built = children(example("trainingjob-single-gpu.yaml"))
    assert built.service is None
    assert built.objects() == (built.job,)
    assert "subdomain" not in built.job["spec"]["template"]["spec"]


def test_a_single_pytorch_worker_is_its_own_master() -> None:
    env = worker(job_of(minimal(distribution="PyTorch", workers=1)))["env"]
    assert {"name": "MASTER_ADDR", "value": "127.0.0.1"} in env


def test_pods_carry_the_accounting_finalizer_and_the_flavour_label() -> None:
    template = job_of(minimal())["spec"]["template"]["metadata"]
    assert template["finalizers"] == ["cadre.dev/accounting"]
    assert template["labels"]["cadre.dev/flavor"] == "t4"


def test_without_distribution_no_rendezvous_env_and_no_service_port() -> None:
    built = children(minimal(workers=2))
    assert "env" not in worker(built.job)
    assert "ports" not in worker(built.job)
    assert worker(built.job)["command"] == ["python", "train.py"]
    assert built.service is not None
    service = built.service["spec"]
    assert "ports" not in service
    assert service["clusterIP"] == "None"
    assert service["publishNotReadyAddresses"] is True
    assert service["selector"] == {
        "batch.kubernetes.io/job-name": "tj",
        "cadre.dev/trainingjob": "tj",
    }


def test_same_input_gives_equal_output() -> None:
    body = example("trainingjob-pytorch.yaml")
    first = children(body)
    second = children(copy.deepcopy(body))
    assert first == second
    # Model, spec model and wire dict are the same input.
    model = TrainingJob.model_validate(body)
    kw: dict[str, Any] = {
        "name": "resnet50-imagenet",
        "namespace": "vision-research",
        "uid": UID,
        "team": "vision",
        "config": config(),
    }
    assert build_training_job_children(model, **kw) == first
    assert build_training_job_children(model.spec, **kw) == first
    assert build_training_job_children(body["spec"], **kw) == first


def test_builders_do_not_mutate_their_input() -> None:
    body = example("trainingjob-pytorch.yaml")
    before = copy.deepcopy(body)
    children(body)
    assert body == before


def test_spec_hash_changes_with_the_spec_only() -> None:
    a = job_of(minimal())
    b = job_of(minimal(image="ghcr.io/acme/train:1.5"))
    assert (
        a["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
        == (job_of(minimal())["metadata"]["annotations"][ANNOTATION_SPEC_HASH])
    )
    assert (
        a["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
        != (b["metadata"]["annotations"][ANNOTATION_SPEC_HASH])
    )


def test_unknown_flavour_raises_with_a_message_for_the_condition() -> None:
    body = minimal(resources={"flavor": "h100", "gpus": 8})
    with pytest.raises(UnknownFlavourError) as caught:
        children(body)
    assert str(caught.value) == (
        "flavour 'h100' is not in the operator config; known: a100, t4, cpu-only"
    )
    assert caught.value.reason == "UnknownFlavour"
    assert isinstance(caught.value, BuildError)


def test_gpus_without_flavour_raise() -> None:
    # The CRD's CEL rule rejects this; a builder fed a dict must not emit a GPU-less pod.
    body = minimal(resources={"gpus": 2})
    with pytest.raises(FlavourRequiredError, match="need a flavour"):
        children(body)


def test_no_flavour_and_no_gpus_runs_anywhere() -> None:
    job = job_of(minimal(resources={"cpu": "2"}))
    pod = job["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert worker(job)["resources"] == {"requests": {"cpu": "2"}}


def test_flavour_becomes_node_selector_tolerations_and_gpu_resource() -> None:
    job = job_of(example("trainingjob-single-gpu.yaml"))
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cadre.dev/flavor": "t4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert worker(job)["resources"] == {
        "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
    }
    assert "securityContext" not in pod


def test_cpu_only_flavour_has_no_gpu_resource_and_no_tolerations() -> None:
    job = job_of(minimal(resources={"flavor": "cpu-only", "cpu": 3, "memory": "1Gi"}))
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cadre.dev/flavor": "cpu-only"}
    assert "tolerations" not in pod
    assert worker(job)["resources"] == {
        "limits": {"memory": "1Gi"},
        "requests": {"cpu": "3", "memory": "1Gi"},
    }


def test_user_labels_cannot_override_cadres() -> None:
    body = minimal(
        podMetadata={
            "labels": {
                "cadre.dev/team": "not-mine",
                "cadre.dev/trainingjob": "other",
                "cadre.dev/anything": "x",
                "app.kubernetes.io/managed-by": "me",
                "batch.kubernetes.io/job-name": "other",
                "job-name": "other",
                "app": "mine",
            },
            "annotations": {
                "batch.kubernetes.io/job-completion-index": "7",
                "prometheus.io/scrape": "true",
            },
        }
    )
    job = job_of(body, team="vision")
    template = job["spec"]["template"]["metadata"]
    assert template["labels"] == {
        "app": "mine",
        "cadre.dev/flavor": "t4",
        LABEL_MANAGED_BY: "cadre",
        LABEL_TEAM: "vision",
        LABEL_TRAININGJOB: "tj",
    }
    assert template["annotations"] == {"prometheus.io/scrape": "true"}
    assert job["metadata"]["labels"] == {
        "cadre.dev/flavor": "t4",
        LABEL_MANAGED_BY: "cadre",
        LABEL_TEAM: "vision",
        LABEL_TRAININGJOB: "tj",
    }


def test_without_team_there_is_no_team_label() -> None:
    built = children(minimal(workers=2), team=None)
    assert built.service is not None
    for labels in (
        built.job["metadata"]["labels"],
        built.job["spec"]["template"]["metadata"]["labels"],
        built.service["metadata"]["labels"],
    ):
        assert LABEL_TEAM not in labels
        assert labels[LABEL_TRAININGJOB] == "tj"


def test_team_that_cannot_be_a_label_value_raises() -> None:
    with pytest.raises(InvalidTeamError, match="at most 63"):
        children(minimal(), team="t" * 64)


@pytest.mark.parametrize(
    ("max_runtime", "seconds"),
    [("48h", 172800), ("1h30m", 5400), ("90s", 90), ("1.5s", 2), ("0s", 1)],
)
def test_max_runtime_becomes_active_deadline_seconds(max_runtime: str, seconds: int) -> None:
    assert job_of(minimal(maxRuntime=max_runtime))["spec"]["activeDeadlineSeconds"] == seconds


def test_no_max_runtime_no_deadline() -> None:
    assert "activeDeadlineSeconds" not in job_of(minimal())["spec"]


def test_checkpoint_claim_is_mounted() -> None:
    job = job_of(example("trainingjob-pytorch.yaml"))
    pod = job["spec"]["template"]["spec"]
    assert {"name": "checkpoint", "persistentVolumeClaim": {"claimName": "resnet-ckpt"}} in pod[
        "volumes"
    ]
    assert {"name": "checkpoint", "mountPath": "/ckpt"} in worker(job)["volumeMounts"]


def test_checkpoint_default_mount_path() -> None:
    job = job_of(minimal(checkpoint={"volumeClaim": "c"}))
    assert {"name": "checkpoint", "mountPath": "/checkpoints"} in worker(job)["volumeMounts"]


def test_no_checkpoint_only_shared_memory_volume() -> None:
    job = job_of(minimal())
    assert job["spec"]["template"]["spec"]["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory"}}
    ]
    assert worker(job)["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]


def test_service_account_and_image_entrypoint() -> None:
    job = job_of(minimal(command=None, args=["--x"], serviceAccountName="trainer"))
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "trainer"
    assert "command" not in worker(job)
    assert worker(job)["args"] == ["--x"]


def test_service_and_job_builders_agree_with_children() -> None:
    body = example("trainingjob-pytorch.yaml")
    kw: dict[str, Any] = {
        "name": "resnet50-imagenet",
        "namespace": "vision-research",
        "uid": UID,
        "team": "vision",
    }
    built = children(body)
    assert build_job(body, config=config(), **kw) == built.job
    assert build_headless_service(body, **kw) == built.service


def test_pod_failure_policy_fails_fast_with_a_readable_reason() -> None:
    spec = job_of(minimal())["spec"]
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"] == [
        {
            "action": "FailJob",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        },
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "worker", "operator": "NotIn", "values": [0]},
        },
    ]
