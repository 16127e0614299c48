"""FHIR resource interactions (create, update, delete, conditional forms) over one unit of work.

The REST API, transaction Bundles, the HL7 v2 intake and the order operations all write through
``ResourceService`` so that structure checks, profile validation and lifecycle guards apply to
every door alike. Methods take an open ``Tx`` so that callers compose several writes into one
database transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fhirmwl.errors import BadRequest, Gone, NotFound, PreconditionFailed, Unprocessable
from fhirmwl.fhir.search import parse_search
from fhirmwl.fhir.search_params import RESOURCE_TYPES
from fhirmwl.fhir.structure import check_structure
from fhirmwl.store import Store, Stored, Tx

# (tx, resource_type, resource) -> OperationOutcome issues (errors and warnings)
Validator = Callable[[Tx, str, dict[str, Any]], list[dict[str, Any]]]
# (tx, resource_type, previous or None, new or None for delete) -> raise to refuse
Guard = Callable[[Tx, str, dict[str, Any] | None, dict[str, Any] | None], None]


# Set while a caller writes content it has already validated as a whole (an order Bundle:
# R5 structure of every entry plus each entry's claimed or implied profile), so the per-resource
# R5 structure check and the profile validator (``services.profiles``) do not run a second
# time. The resourceType check, other validators and the lifecycle guards always run.
_PREVALIDATED: ContextVar[bool] = ContextVar("fhirmwl_prevalidated", default=False)


@contextmanager
def _flagged(var: ContextVar[bool]) -> Iterator[None]:
    token = var.set(True)
    try:
        yield
    finally:
        var.reset(token)


def prevalidated() -> AbstractContextManager[None]:
    """Writes inside this block skip the structure/profile checks (already done by the caller)."""
    return _flagged(_PREVALIDATED)


def is_prevalidated() -> bool:
    return _PREVALIDATED.get()


# Set while the broker writes resources it built itself (the HL7 v2 door: mapping, order
# completion, merge with stored resources). Their shape is fixed by that code, so the R5
# structure check runs without the generic pydantic model pass (``check_structure(built=True)``:
# base rules, every primitive value, unknown elements); untrusted input (REST, transactions,
# $create-order) always gets the full pass (which skips the model only where
# ``fhir.model_shape`` proves it would find nothing). Profile validation runs as usual.
_BUILT: ContextVar[bool] = ContextVar("fhirmwl_built", default=False)


def built_by_broker() -> AbstractContextManager[None]:
    """Writes inside this block are of resources the broker's own mappings built."""
    return _flagged(_BUILT)


@dataclass
class WriteResult:
    stored: Stored
    created: bool
    warnings: list[dict[str, Any]] = field(default_factory=list)


def criteria_key(resource_type: str, query: str) -> str:
    """One lock key per set of search criteria, however the query string spells or orders it."""
    params = sorted(parse_qsl(query, keep_blank_values=True))
    return f"{resource_type}?" + "&".join(f"{k}={v}" for k, v in params)


def lock_identifier(tx: Tx, resource_type: str, system: str | None, value: str) -> bool:
    """Lock the business identifier ``system|value`` of ``resource_type`` for this unit of work:
    the same key a conditional create/update ``?identifier=system|value`` takes, so the broker's
    own find-or-create (order by placer number, station Device by AE title) and the conditional
    interactions serialise on it. Returns False where writers are serialised anyway (SQLite)."""
    token = f"{system}|{value}" if system else value
    return tx.lock(f"{resource_type}?identifier={token}")


def check_type(resource_type: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise NotFound(f"resource type {resource_type!r} is not supported by this server")


class ResourceService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.validators: list[Validator] = []
        self.guards: list[Guard] = []

    # ---- checks ------------------------------------------------------------------------
    def prepare(
        self,
        tx: Tx,
        resource_type: str,
        resource: dict[str, Any],
        previous: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """Check structure, profiles and lifecycle rules; return warnings, raise on errors."""
        check_type(resource_type)
        if not _PREVALIDATED.get() or resource.get("resourceType") != resource_type:
            check_structure(resource_type, resource, built=_BUILT.get())
        warnings: list[dict[str, Any]] = []
        for validator in self.validators:
            found = validator(tx, resource_type, resource)
            errors = [i for i in found if i["severity"] in ("error", "fatal")]
            if errors:
                raise Unprocessable(errors[0]["diagnostics"], issues=found)
            warnings += found
        for guard in self.guards:
            guard(tx, resource_type, previous, resource)
        return warnings

    # ---- conditional lookups -----------------------------------------------------------
    def find(self, tx: Tx, resource_type: str, query: str) -> list[str]:
        """Ids of resources matching a search query string (for conditional interactions)."""
        params = parse_qsl(query, keep_blank_values=True)
        if not params:
            raise BadRequest(f"empty search criteria for conditional {resource_type} interaction")
        q = parse_search(resource_type, params, strict=True)
        q.count = 2
        return [res_id for res_id, _ in tx.search(q)]

    def find_one(self, tx: Tx, resource_type: str, query: str) -> str | None:
        ids = self.find(tx, resource_type, query)
        if len(ids) > 1:
            raise PreconditionFailed(
                f"conditional criteria {resource_type}?{query} match more than one resource"
            )
        return ids[0] if ids else None

    def find_one_locked(self, tx: Tx, resource_type: str, query: str) -> str | None:
        """``find_one`` for a caller that creates when nothing matches (conditional create and
        update, the broker's find-or-create). On a miss the criteria are locked until the unit of
        work ends and the search runs again: a concurrent caller on another connection or in
        another process waits for the first one to commit and then finds what it created, so the
        criteria yield exactly one resource. A hit takes no lock."""
        found = self.find_one(tx, resource_type, query)
        if found is None and tx.lock(criteria_key(resource_type, query)):
            found = self.find_one(tx, resource_type, query)
        return found

    # ---- interactions ------------------------------------------------------------------
    def create(
        self,
        tx: Tx,
        resource_type: str,
        resource: dict[str, Any],
        if_none_exist: str | None = None,
    ) -> WriteResult:
        if if_none_exist:
            existing = self.find_one_locked(tx, resource_type, if_none_exist)
            if existing:
                stored = tx.read(resource_type, existing)
                assert stored is not None
                return WriteResult(stored, created=False)
        body = {k: v for k, v in resource.items() if k != "id"}
        warnings = self.prepare(tx, resource_type, body, None)
        return WriteResult(tx.create(resource_type, body), True, warnings)

    def update(
        self,
        tx: Tx,
        resource_type: str,
        res_id: str,
        resource: dict[str, Any],
        if_match: int | None = None,
    ) -> WriteResult:
        if resource.get("id") not in (None, res_id):
            raise BadRequest(
                f"resource id {resource.get('id')!r} does not match the URL id {res_id!r}",
                expression=f"{resource_type}.id",
            )
        body = dict(resource, id=res_id)
        current = tx.read(resource_type, res_id)
        previous = current.resource() if current and not current.deleted else None
        warnings = self.prepare(tx, resource_type, body, previous)
        stored, created = tx.update(resource_type, res_id, body, if_match)
        return WriteResult(stored, created, warnings)

    def conditional_update(
        self,
        tx: Tx,
        resource_type: str,
        query: str,
        resource: dict[str, Any],
        if_match: int | None = None,
    ) -> WriteResult:
        existing = self.find_one_locked(tx, resource_type, query)
        if existing is None:
            if resource.get("id"):
                return self.update(tx, resource_type, resource["id"], resource, if_match)
            return self.create(tx, resource_type, resource)
        return self.update(tx, resource_type, existing, resource, if_match)

    def delete(
        self, tx: Tx, resource_type: str, res_id: str, if_match: int | None = None
    ) -> Stored | None:
        check_type(resource_type)
        current = tx.read(resource_type, res_id)
        if current is not None and not current.deleted:
            for guard in self.guards:
                guard(tx, resource_type, current.resource(), None)
        return tx.delete(resource_type, res_id, if_match)

    def read(self, tx: Tx, resource_type: str, res_id: str) -> Stored:
        check_type(resource_type)
        stored = tx.read(resource_type, res_id)
        if stored is None:
            raise NotFound(f"{resource_type}/{res_id} is not known")
        if stored.deleted:
            raise Gone(f"{resource_type}/{res_id} was deleted (version {stored.version})")
        return stored

    def vread(self, tx: Tx, resource_type: str, res_id: str, version: str) -> Stored:
        check_type(resource_type)
        if not version.isdigit():
            raise NotFound(f"version {version!r} of {resource_type}/{res_id} is not known")
        stored = tx.vread(resource_type, res_id, int(version))
        if stored is None:
            raise NotFound(f"version {version} of {resource_type}/{res_id} is not known")
        if stored.deleted:
            raise Gone(f"version {version} of {resource_type}/{res_id} is a deletion")
        return stored
