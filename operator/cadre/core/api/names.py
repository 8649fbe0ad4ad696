"""Cadre's well-known names: labels, annotations and finalizers on the objects it manages.
They are part of the API: users select with the labels, and the install's admission
policies protect them."""

from __future__ import annotations

from typing import Final

# Cadre's own labels. They are on every child and every pod, and always win over a user's.
LABEL_TEAM: Final = "cadre.dev/team"
LABEL_TRAININGJOB: Final = "cadre.dev/trainingjob"
LABEL_MODELDEPLOYMENT: Final = "cadre.dev/modeldeployment"
LABEL_FLAVOR: Final = "cadre.dev/flavor"
# Which version of a ModelDeployment a serving pod runs: stable or canary.
LABEL_TRACK: Final = "cadre.dev/track"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "cadre"
# Every pod of a Cadre workload (training or serving) carries it: the pod watch selects on it.
MANAGED_SELECTOR: Final = f"{LABEL_MANAGED_BY}={MANAGED_BY}"

# On every pod Cadre's Jobs create (from the pod template): the pod object, with its
# containers' start and finish times, stays until Cadre has recorded its cost in the
# team's ResourceBudget, even if the pod is deleted while the operator is down.
ACCOUNTING_FINALIZER: Final = "cadre.dev/accounting"

# A digest of what the builder produced, so an adapter that meets an existing child (409)
# can tell "already there, as wanted" from "built from another spec or builder version".
ANNOTATION_SPEC_HASH: Final = "cadre.dev/spec-hash"

# On a Job Cadre created for an admission: the admission's `id` (TrainingJob
# status.admission.id). The status, which users cannot write, names the Job by it.
ANNOTATION_ADMISSION: Final = "cadre.dev/admission"

# Set on pods by the Job controller (Kubernetes >= 1.27 for the label).
JOB_NAME_LABEL: Final = "batch.kubernetes.io/job-name"
COMPLETION_INDEX_ANNOTATION: Final = "batch.kubernetes.io/job-completion-index"
