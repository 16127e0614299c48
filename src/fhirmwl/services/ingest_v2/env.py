"""What the v2 intake needs from the process, built once per ``Services`` (``install``).

The mapping context comes from the settings: UID root, time zone, and the ``[v2]`` TOML section
(``missing_values`` = ``generate`` | ``reject`` or a table per value, ``default_station_ae``,
``issuers`` = namespace id → identifier system). The order context is the one the FHIR order
operations use, so both doors follow the same lifecycle rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhirmwl.config import Settings
from fhirmwl.fhir.dates import now_instant
from fhirmwl.mapping.v2_to_fhir import (
    IdentifierSystems,
    MappingContext,
    MissingValue,
    MissingValuePolicy,
)
from fhirmwl.services.worklist.stations import StationRules

if TYPE_CHECKING:
    from fhirmwl.services.container import Services
    from fhirmwl.services.ingest_v2.group import GroupCommit
    from fhirmwl.services.orders import OrderContext

DEFAULT_STATION_AE = "UNASSIGNED"  # ScheduledStationAETitle when IPC-9 is absent
_POLICY_FIELDS = ("accession_number", "study_instance_uid", "sps_id", "requested_procedure_id")


def missing_value_policy(setting: Any) -> MissingValuePolicy:
    """``"reject"`` / ``"generate"`` for all values, or a table naming some of them."""
    if isinstance(setting, dict):
        return MissingValuePolicy(
            **{k: MissingValue(str(v)) for k, v in setting.items() if k in _POLICY_FIELDS}
        )
    value = MissingValue(str(setting or "generate"))
    return MissingValuePolicy(value, value, value, value)


def mapping_context(settings: Settings) -> MappingContext:
    v2 = settings.extra.get("v2") or {}
    return MappingContext(
        uid_root=settings.uid_root or None,
        timezone=settings.timezone,
        systems=IdentifierSystems(
            issuers={str(k): str(v) for k, v in (v2.get("issuers") or {}).items()}
        ),
        policy=missing_value_policy(v2.get("missing_values")),
        default_station_ae=str(v2.get("default_station_ae") or DEFAULT_STATION_AE),
        station_for=StationRules.from_settings(settings.extra.get("station_rules", [])).for_step,
    )


@dataclass
class IngestEnv:
    services: Services
    mapping: MappingContext
    orders: OrderContext
    now: Callable[[], str] = field(default=now_instant)
    group: GroupCommit | None = None  # SQLite: concurrent messages share one commit

    @property
    def store(self) -> Any:
        return self.services.store

    @property
    def resources(self) -> Any:
        return self.services.resources

    @property
    def bundles(self) -> Any:
        return self.services.bundles

    @property
    def base(self) -> str:
        return self.services.settings.fhir_base


def environment(services: Services) -> IngestEnv:
    """The process's ``IngestEnv`` (created on first use when ``install`` was not called)."""
    env = services.ingest_env
    if env is None:
        from fhirmwl.services.ingest_v2.listener import install

        env = install(services)
    assert isinstance(env, IngestEnv)
    return env
