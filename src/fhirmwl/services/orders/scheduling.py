"""Scheduling a Requested Procedure from the catalogue: pick a station, a start time, a Task.

The station is the candidate AE title with the fewest steps on the worklist for the step's
(local) day, so a station group spreads the load; its Device is found by AE title
(identifier ``urn:fhirmwl:id:ae-title``, the key the HL7 v2 door's conditional create uses, so
both doors resolve one Device per AE title; older Devices by ``Device.name``) or created in the
same transaction by conditional create. The load is
read from the worklist index (one indexed COUNT on station and date): counting every live Task
of a station through the search index grew with the station's history and was the slowest
statement of ``$create-order``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fhirmwl.fhir import model
from fhirmwl.fhir.search import parse_search
from fhirmwl.mapping.v2_to_fhir import IdentifierSystems
from fhirmwl.services.orders.catalogue import Procedure
from fhirmwl.services.orders.context import OrderContext
from fhirmwl.services.resources import lock_identifier
from fhirmwl.store import Tx

STATION_AE_SYSTEM = IdentifierSystems().station_ae  # the same key the v2 door resolves by


def station_device(ae_title: str, name: str = "") -> dict[str, Any]:
    names = [{"value": ae_title, "type": "registered-name"}]
    if name:
        names.append({"value": name, "type": "user-friendly-name"})
    return {
        "resourceType": "Device",
        "meta": {
            "profile": [model.PROFILE_STATION],
            "tag": [model.generated_tag("scheduled-station", "procedure catalogue")],
        },
        "identifier": [{"system": STATION_AE_SYSTEM, "value": ae_title}],
        "status": "active",
        "name": names,
    }


def find_station(tx: Tx, ae_title: str) -> str | None:
    """The station Device by its AE-title identifier, else (older data) by registered name. On a
    miss the AE title is locked (the key the HL7 v2 intake's conditional create takes) and looked
    up again, so concurrent orders naming one new station create one Device."""

    def lookup() -> str | None:
        for param, value in (
            ("identifier", f"{STATION_AE_SYSTEM}|{ae_title}"),
            ("name:exact", ae_title),
        ):
            q = parse_search("Device", [(param, value)], strict=True)
            q.count = 1
            hits = tx.search(q)
            if hits:
                return f"Device/{hits[0][0]}"
        return None

    found = lookup()
    if found is None and lock_identifier(tx, "Device", STATION_AE_SYSTEM, ae_title):
        found = lookup()
    return found


def station_load(tx: Tx, ae_title: str, day: str) -> int:
    """Steps on the worklist of ``ae_title`` on ``day`` (DICOM DA, local time)."""
    row = tx.conn.execute(
        "SELECT COUNT(*) FROM worklist WHERE station_aet = ? AND sps_start_date = ?",
        (ae_title, day),
    ).fetchone()
    return int(row[0])


def pick_station(
    tx: Tx,
    ctx: OrderContext,
    proc: Procedure,
    stations: dict[str, str],
    add_entry: Callable[[dict[str, Any]], None],
    start: datetime,
) -> str:
    """Reference of the least-loaded candidate station (creating its Device when unknown)."""
    day = start.astimezone(ctx.timezone).strftime("%Y%m%d")
    best: tuple[int, str] | None = None
    for ae in proc.stations:
        ref = stations.get(ae) or find_station(tx, ae)
        if ref is None:
            full_url = f"urn:uuid:{uuid.uuid4()}"
            add_entry(
                {
                    "fullUrl": full_url,
                    "resource": station_device(ae, ctx.catalogue.station(ae).name),
                    "request": {
                        "method": "POST",
                        "url": "Device",
                        "ifNoneExist": f"identifier={STATION_AE_SYSTEM}|{ae}",
                    },
                }
            )
            ref = full_url
        stations[ae] = ref
        load = 0 if len(proc.stations) == 1 else station_load(tx, ae, day)
        if best is None or load < best[0]:
            best = (load, ref)
    assert best is not None
    return best[1]


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def catalogue_task(
    tx: Tx,
    ctx: OrderContext,
    rp_entry: dict[str, Any],
    proc: Procedure,
    stations: dict[str, str],
    add_entry: Callable[[dict[str, Any]], None],
    now: datetime,
) -> dict[str, Any]:
    """A new Task entry for an RP without one, scheduled per the catalogue entry."""
    from fhirmwl.services.orders.complete import default_start

    rp = rp_entry["resource"]
    start = default_start(rp, now, ctx.settings.slot_minutes)
    end = start + timedelta(minutes=proc.duration or ctx.settings.default_duration)
    code: dict[str, Any] = {
        "text": proc.description
        or ((rp.get("code") or {}).get("concept") or {}).get("text", proc.code)
    }
    if proc.protocol:
        code["coding"] = [dict(p) for p in proc.protocol]
    task: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {
            "profile": [model.PROFILE_SPS],
            "tag": [model.generated_tag("scheduled-procedure-step", "procedure catalogue")],
        },
        "status": "requested",
        "intent": "plan",
        "code": code,
        "basedOn": [{"reference": rp_entry["fullUrl"]}],
        "requestedPeriod": {"start": _iso(start), "end": _iso(end)},
        "requestedPerformer": [
            {"reference": {"reference": pick_station(tx, ctx, proc, stations, add_entry, start)}}
        ],
        "input": [model.modality_input(proc.modality)],
    }
    if rp.get("subject"):
        task["for"] = dict(rp["subject"])
    if rp.get("encounter"):
        task["encounter"] = dict(rp["encounter"])
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": task,
        "request": {"method": "POST", "url": "Task"},
    }
