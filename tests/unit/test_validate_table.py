"""Each broken manifest gives exactly one error, at the exact path, saying what to fix."""

from __future__ import annotations

import pytest

from broken_manifests import CASES, Case, model_deployment, resource_budget, training_job
from cadre.tools.validation import validate_document


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("make", [training_job, model_deployment, resource_budget])
def test_the_unbroken_bases_pass(make) -> None:  # type: ignore[no-untyped-def]
    assert validate_document(make()).errors == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_broken_manifest_is_reported_at_its_path(case: Case) -> None:
    errors = validate_document(case.manifest()).errors
    assert [e.path for e in errors] == [case.path], errors
    assert case.message in errors[0].message
