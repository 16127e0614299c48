"""The guide's example instances, as published (../shared/spec/ig-examples-transaction.json),
are the contract: the validator finds no error in any of them, alone or as one Bundle."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.conftest import IG_EXAMPLES, REPO, ig_examples

from fhirmwl.validation import validate, validate_bundle


def _names() -> list[str]:
    if not IG_EXAMPLES.is_file():
        return ["missing"]
    return [e["resource"]["resourceType"] + f"-{i}" for i, e in enumerate(ig_examples()["entry"])]


def _entry(name: str) -> dict[str, Any]:
    index = int(name.rsplit("-", 1)[1])
    return dict(ig_examples()["entry"][index]["resource"])


def test_readme_copy_is_the_published_example() -> None:
    """README's curl example posts tests/data/ig-example-transaction.json: it must stay the
    guide's text, never an edited copy."""
    copy = json.loads((REPO / "tests/data/ig-example-transaction.json").read_text("utf-8"))
    assert copy == ig_examples()


def test_the_example_transaction_has_no_issue() -> None:
    assert validate_bundle(ig_examples()) == []


@pytest.mark.parametrize("name", _names())
def test_each_example_alone_has_no_error(name: str) -> None:
    """Alone, ``urn:uuid:`` references cannot be resolved: the target profiles cannot be
    checked, but that is no error (slices are filled by position, see docs/conformance.md)."""
    resource = _entry(name)
    assert resource["meta"]["profile"], "every guide example claims its profile"
    assert [i for i in validate(resource) if i.is_error] == []


def test_study_based_on_either_request() -> None:
    """I-14 revised: the ImagingStudy may point at the RP, the ISR or both, not at neither."""
    bundle = ig_examples()
    study = bundle["entry"][5]["resource"]
    rp_url = bundle["entry"][3]["fullUrl"]
    for based_on in ([rp_url], [rp_url, study["basedOn"][0]["reference"]]):
        study["basedOn"] = [{"reference": r} for r in based_on]
        assert validate_bundle(bundle) == [], based_on
    study["basedOn"] = [{"reference": "Task/t1"}]
    issues = validate_bundle(bundle)
    assert [(i.severity, i.code, i.expression) for i in issues] == [
        ("error", "invariant", "Bundle.entry[5].resource")
    ]
    assert "study-2" in issues[0].diagnostics
