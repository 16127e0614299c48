"""The HTTP edge of ``security.worklist_peers``: read the request's source address, verified
token claims and ``X-Calling-AE-Title`` header, and narrow a worklist query as C-FIND would."""

from __future__ import annotations

from starlette.requests import Request

from fhirmwl.security import auth_enabled
from fhirmwl.security.worklist_peers import HEADER, WorklistPeers
from fhirmwl.services.container import Services
from fhirmwl.services.worklist.listener import access_policy
from fhirmwl.worklist.query import WorklistQuery


class PeerScope:
    """The C-FIND rules for one HTTP request: ``title`` it acts as (``None``: no rule applies);
    ``narrow(q)`` is ``q`` as C-FIND would answer that title, ``None`` when it matches nothing."""

    def __init__(self, services: Services, request: Request) -> None:
        self.peers = WorklistPeers(
            access_policy(services.settings), auth_enabled(services.settings)
        )
        claims = request.scope.get("state", {}).get("auth_claims")
        host = request.client.host if request.client else ""
        self.title = self.peers.title(host, claims, request.headers.get(HEADER))

    def narrow(self, q: WorklistQuery) -> WorklistQuery | None:
        return self.peers.narrow(q, self.title)
