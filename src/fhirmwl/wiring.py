"""The composition root: settings → store → services → features → migrations → doors.

Everything a process runs is assembled here, in this order and nowhere else:

1. the store is opened without migrating (``auto_migrate=False``);
2. the core services (``ResourceService``, ``BundleProcessor``) are built into ``Services``;
3. ``plugins.install_all`` installs every feature: write hooks, validators, guards, FHIR
   operations, listener factories, and the schema migrations they need (registered, not run);
4. the migrations run once, in version order, after every feature registered its own;
5. the doors (HTTP, then the listeners features registered: MLLP, DICOM, notifications) are
   created from the finished ``Services`` by ``doors`` and started by ``runtime.Runtime``.

Command-line tools call ``build_services`` and skip step 5; ``fhirmwl migrate`` calls
``migrate_schema`` (steps 1-4, so every feature's tables are created too). The service layer
(``services/``) never imports a door; doors and ``plugins`` import services.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirmwl.config import Settings
from fhirmwl.services.bundles import BundleProcessor
from fhirmwl.services.container import Services
from fhirmwl.services.resources import ResourceService
from fhirmwl.store import open_store
from fhirmwl.store.migrations import current_version, migrate


def build_services(settings: Settings) -> Services:
    """Steps 1-4: the store, the services and every feature, on a migrated schema."""
    return _assemble(settings, lambda services: migrate(services.store.db))[0]


def migrate_schema(settings: Settings) -> tuple[list[int], int]:
    """``fhirmwl migrate``: steps 1-4 and close; (versions applied now, schema version). The
    features must be installed first: they register the migrations of their own tables."""
    services, applied = _assemble(settings, lambda s: migrate(s.store.db))
    try:
        return applied, current_version(services.store.db)
    finally:
        services.close()


def _assemble(settings: Settings, then: Callable[[Services], Any]) -> tuple[Services, Any]:
    from fhirmwl import plugins

    store = open_store(settings.db, auto_migrate=False)
    resources = ResourceService(store)
    services = Services(settings, store, resources, BundleProcessor(resources))
    try:
        plugins.install_all(services)
        result = then(services)
        for step in services.after_migrate:
            step()
    except BaseException:
        store.close()
        raise
    return services, result


def http_door(services: Services) -> Any:
    from fhirmwl.runtime import HttpListener

    return HttpListener(services)


def doors(services: Services) -> list[tuple[str, Callable[[Services], Any]]]:
    """Step 5: (settings flag, factory) of every listener, HTTP first; the runtime starts those
    whose flag (``settings.http``, ``settings.mllp``, ``settings.dicom`` …) is true."""
    return [("http", http_door), *services.listener_factories]
