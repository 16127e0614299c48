"""The desk with authentication on, over real HTTP (SQLite and PostgreSQL): the login through
the built-in server's form (authorization code with PKCE), the session cookie, scope checks on
pages and actions, logout, throttled failures, and the desk against a second broker acting as
the external authorization server."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from fhirmwl.config import load_settings
from fhirmwl.runtime import Runtime
from fhirmwl.security import pkce, users
from fhirmwl.security.authserver import OAuthError
from fhirmwl.web.session import SESSION, SessionStore
from tests.conftest import free_port
from tests.integration.web.conftest import Desk, today
from tests.integration.web.messages import omi

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
ROW = re.compile(r'<tr data-task="([^"]+)">')
READER, WRITER = ("reader", "reader-password"), ("writer", "writer-password")


def add_users(db: Any) -> None:
    users.add_user(db, *READER, "user/*.rs")
    users.add_user(db, *WRITER, "user/*.cruds")
    users.add_user(db, "tasks", "tasks-password", "user/Task.rs")


def open_form(http: httpx.Client, url: str) -> httpx.Response:
    """Follow a desk page to the login form; returns the form page."""
    form = http.get(url, follow_redirects=True)
    assert form.status_code == 200 and "/auth/authorize" in str(form.url), form.text
    return form


def submit(http: httpx.Client, form: httpx.Response, name: str, password: str) -> httpx.Response:
    fields = {k: html.unescape(v) for k, v in HIDDEN.findall(form.text)}
    fields.update(username=name, password=password)
    action = str(form.url.copy_with(query=None))
    return http.post(action, data=fields, follow_redirects=True)


def login(http: httpx.Client, base: str, user: tuple[str, str]) -> httpx.Response:
    return submit(http, open_form(http, f"{base}/ui/worklist"), *user)


@pytest.fixture
def auth_desk(db_url: str, start_desk: Callable[..., Desk]) -> Desk:
    desk = start_desk(db_url, auth="builtin")
    add_users(desk.runtime.services.store.db)
    return desk


def _csrf(http: httpx.Client) -> str:
    return str(http.cookies["fhirmwl_desk_csrf"])


def test_unauthenticated_requests_go_to_the_login(auth_desk: Desk) -> None:
    http = auth_desk.http
    r = http.get("/ui/worklist?station=CT01")
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fworklist%3Fstation%3DCT01"
    assert http.get("/").headers["location"].startswith("/ui/login?next=")
    assert http.get("/ui/events").status_code == 401
    assert http.get("/ui/worklist?partial=1").status_code == 401
    assert http.post("/ui/order/x/cancel", data={"csrf": "x"}).status_code == 401
    assert http.get("/ui/static/desk.css").status_code == 200  # no patient data, no login
    assert http.get("/fhir/Task").status_code == 401  # the API keeps its bearer door
    start = http.get("/ui/login?next=/ui/messages")
    assert start.status_code == 303
    target = urlsplit(start.headers["location"])
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert target.path == "/auth/authorize"
    assert query["code_challenge_method"] == "S256" and pkce.valid_challenge(
        query["code_challenge"]
    )
    assert query["client_id"] == "fhirmwl-desk"
    assert query["redirect_uri"] == f"{auth_desk.base}/ui/callback"
    assert query["state"] == http.cookies["fhirmwl_desk_login"]
    login_cookie = start.headers["set-cookie"].lower()
    assert "httponly" in login_cookie and "samesite=lax" in login_cookie


def test_read_only_user_sees_but_cannot_change(auth_desk: Desk) -> None:
    auth_desk.send_ok(omi("DOE^JANE", today(), placer="PLOGIN1")[0])
    http = auth_desk.http
    worklist = login(http, auth_desk.base, READER)
    assert worklist.status_code == 200 and str(worklist.url).endswith("/ui/worklist")
    assert "DOE, JANE" in worklist.text and ">reader</span>" in worklist.text
    session = next(c for c in http.cookies.jar if c.name == "fhirmwl_desk_session")
    assert session.has_nonstandard_attr("HttpOnly") and session.path == "/"
    assert "eyJ" not in str(session.value)  # the token stays on the server …
    with auth_desk.runtime.services.store.read() as tx:  # … encrypted under the cookie's id
        rows = tx.conn.execute("SELECT id_hash, data FROM desk_session").fetchall()
    assert rows and not any("eyJ" in data or str(session.value) in data for _, data in rows)
    assert not any(str(session.value) in id_hash for id_hash, _ in rows)
    (task,) = ROW.findall(worklist.text)
    order = http.get(f"/ui/task/{task}").headers["location"].split("#")[0]
    page = http.get(order)
    assert page.status_code == 200
    # the page shows a reader no action forms, and says which scope they lack …
    assert "/cancel" not in page.text and "/reschedule" not in page.text
    assert "reader may not cancel an order: the login lacks the scope" in page.text
    assert "reader may not change a step&#39;s status" in page.text
    # … and an action posted anyway is refused
    refused = http.post(f"{order}/cancel", data={"csrf": _csrf(http), "reason": "x"})
    assert refused.status_code == 403
    assert "reader may not cancel an order: the login lacks the scope user/ServiceRequest.u" in (
        refused.text
    )
    status = http.post(
        f"{order}/status", data={"csrf": _csrf(http), "task": task, "status": "on-hold"}
    )
    assert status.status_code == 403 and "user/Task.u" in status.text
    with auth_desk.runtime.services.store.read() as tx:  # nothing changed
        assert tx.read("Task", task).resource()["status"] == "requested"
        isr = tx.read("ServiceRequest", order.rsplit("/", 1)[1]).resource()
        assert isr["status"] == "active"
    assert ROW.findall(http.get("/ui/worklist").text) == [task]
    assert http.get("/ui/messages").status_code == 200  # user/*.rs reads the message log
    with http.stream("GET", "/ui/events") as events:
        assert events.status_code == 200  # the live feed needs (and has) the session
    # The desk's cookie does not open the API.
    assert http.get("/fhir/Task").status_code == 401


def test_task_only_user_is_refused_other_pages(auth_desk: Desk) -> None:
    http = auth_desk.http
    assert login(http, auth_desk.base, ("tasks", "tasks-password")).status_code == 200
    messages = http.get("/ui/messages")
    assert messages.status_code == 403
    assert "the login lacks the scope user/*.s" in messages.text
    assert http.get("/ui/subscriptions").status_code == 403
    assert http.get("/ui/status").status_code == 200


def test_writer_acts_and_logs_out(auth_desk: Desk) -> None:
    auth_desk.send_ok(omi("ROE^RICHARD", today(), placer="PLOGIN2")[0])
    http = auth_desk.http
    worklist = login(http, auth_desk.base, WRITER)
    (task,) = ROW.findall(worklist.text)
    order = http.get(f"/ui/task/{task}").headers["location"].split("#")[0]
    done = http.post(f"{order}/cancel", data={"csrf": _csrf(http), "reason": "declined"})
    assert done.status_code == 303 and "done=cancelled" in done.headers["location"]
    assert ROW.findall(http.get("/ui/worklist").text) == []
    out = http.post("/ui/logout", data={"csrf": _csrf(http)})
    assert out.status_code == 200 and "You are logged out" in out.text
    assert http.get("/ui/worklist").status_code == 303  # the session is gone server-side too


def test_a_copied_session_cookie_dies_with_the_logout(auth_desk: Desk) -> None:
    http = auth_desk.http
    login(http, auth_desk.base, READER)
    sid = http.cookies["fhirmwl_desk_session"]
    with httpx.Client(base_url=auth_desk.base, cookies={"fhirmwl_desk_session": sid}) as other:
        assert other.get("/ui/worklist").status_code == 200
        http.post("/ui/logout", data={"csrf": _csrf(http)})
        assert other.get("/ui/worklist").status_code == 303


def test_wrong_passwords_are_slowed_down(auth_desk: Desk) -> None:
    http = auth_desk.http
    form = open_form(http, f"{auth_desk.base}/ui/worklist")
    assert 'autocomplete="current-password"' in form.text
    assert "default-src 'none'" in form.headers["content-security-policy"]
    for _ in range(5):
        wrong = submit(http, form, "reader", "not-the-password")
        assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
    locked = submit(http, form, *READER)  # even the right password waits now
    assert locked.status_code == 429 and "try again in" in locked.text
    unknown = submit(http, form, "nobody", "whatever-password")
    assert unknown.status_code == 401  # the same answer as a wrong password
    assert submit(http, open_form(http, "/ui/worklist"), *WRITER).status_code == 200
    logins = _audited_logins(auth_desk, expected=8)
    assert logins.count(("reader", "4")) == 6  # five wrong passwords, then the locked one
    assert ("nobody", "4") in logins and ("writer", "0") in logins


def _audited_logins(desk: Desk, expected: int) -> list[tuple[str, str]]:
    """(user, outcome) of the audited logins, once ``expected`` are written (the audit thread
    may hold a batch in hand, so wait for it rather than flush once)."""
    services = desk.runtime.services
    deadline = time.monotonic() + 30
    while True:
        services.audit_writer.flush()
        with services.store.read() as tx:
            rows = tx.conn.execute(
                "SELECT agent, outcome FROM audit_event WHERE code = ? ORDER BY id", ("110122",)
            ).fetchall()
        if len(rows) >= expected or time.monotonic() > deadline:
            return [(agent, outcome) for agent, outcome in rows]
        time.sleep(0.1)


def test_login_form_refuses_forgery_and_foreign_redirects(auth_desk: Desk) -> None:
    http = auth_desk.http
    form = open_form(http, f"{auth_desk.base}/ui/worklist")
    fields = {k: html.unescape(v) for k, v in HIDDEN.findall(form.text)}
    action = str(form.url.copy_with(query=None))
    forged = http.post(action, data={**fields, "csrf": "x" * 43, "username": "reader",
                                     "password": READER[1]})  # fmt: skip
    assert forged.status_code == 403
    evil = {**fields, "redirect_uri": "http://evil.example/cb"}
    r = http.get(action, params=evil)
    assert r.status_code == 400 and "not registered" in r.text  # shown, never redirected
    plain = http.get(action, params={**fields, "code_challenge_method": "plain"})
    assert plain.status_code == 303
    assert plain.headers["location"].startswith(f"{auth_desk.base}/ui/callback?error=")
    callback = http.get(plain.headers["location"])  # the desk shows the refusal
    assert callback.status_code == 401 and "PKCE is required" in callback.text


def test_callback_needs_the_browser_that_started_the_login(auth_desk: Desk) -> None:
    http = auth_desk.http
    form = open_form(http, f"{auth_desk.base}/ui/worklist")
    fields = {k: html.unescape(v) for k, v in HIDDEN.findall(form.text)}
    fields.update(username=READER[0], password=READER[1])
    answer = http.post(str(form.url.copy_with(query=None)), data=fields)
    assert answer.status_code == 303
    callback = answer.headers["location"]
    with httpx.Client() as stranger:  # login CSRF: someone else's code in this browser
        refused = stranger.get(callback)
        assert refused.status_code == 401 and "not started in this browser" in refused.text
    assert http.get(callback).status_code == 303  # the right browser completes it once
    again = http.get(callback)
    assert again.status_code == 401


@contextmanager
def _broker(db: str, port: int, **settings: Any) -> Iterator[Runtime]:
    runtime = Runtime(
        load_settings(None, db=db, http_port=port, dicom=False, mllp=False, **settings)
    )
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def test_desk_logs_in_at_another_broker_as_external_server(tmp_path: Path) -> None:
    """Broker A runs the built-in server; broker B's desk is its public client over HTTP and
    discovers A's endpoints from the issuer's metadata."""
    port_a, port_b = free_port(), free_port()
    base_a, base_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    external = {
        "auth_jwks": f"{base_a}/auth/jwks",
        "auth_issuer": f"{base_a}/auth",
        "auth_audience": f"{base_a}/fhir",
        "auth_desk_scope": "user/Task.rs user/ServiceRequest.rs",
    }
    with (
        _broker(f"sqlite:///{tmp_path / 'b.db'}", port_b, **external),
        _broker(
            f"sqlite:///{tmp_path / 'a.db'}",
            port_a,
            auth="builtin",
            auth_redirect_uris=f"{base_b}/ui/callback",
        ) as a,
    ):
        add_users(a.services.store.db)
        with httpx.Client(timeout=30) as http:
            form = open_form(http, f"{base_b}/ui/worklist")
            assert str(form.url).startswith(f"{base_a}/auth/authorize?")
            assert f"form-action 'self' {base_b}" in form.headers["content-security-policy"]
            page = submit(http, form, *READER)
            assert page.status_code == 200 and str(page.url) == f"{base_b}/ui/worklist"
            assert ">reader</span>" in page.text
            order = http.get(f"{base_b}/ui/order/none")
            assert order.status_code == 404  # reads are allowed; the order does not exist
            messages = http.get(f"{base_b}/ui/messages")
            assert messages.status_code == 403  # only the scopes the desk asked for
            assert "user/*.s" in messages.text
        with httpx.Client(timeout=30) as http:  # a made-up code: A's token endpoint refuses it
            start = http.get(f"{base_b}/ui/login")
            state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
            bogus = http.get(f"{base_b}/ui/callback", params={"code": "x" * 43, "state": state})
            assert bogus.status_code == 401
            assert "refused (400): the code is unknown or was used before" in bogus.text
            assert http.get(f"{base_b}/ui/worklist").status_code == 303  # no session


def test_session_and_live_feed_end_when_the_token_expires(
    db_url: str, start_desk: Callable[..., Desk]
) -> None:
    desk = start_desk(
        db_url, auth="builtin", auth_user_token_lifetime=2, auth_user_session_lifetime=0
    )
    add_users(desk.runtime.services.store.db)
    http = desk.http
    assert login(http, desk.base, READER).status_code == 200
    seen = []
    with http.stream("GET", "/ui/events", timeout=60) as events:
        assert events.status_code == 200
        for line in events.iter_lines():  # ends when the server closes the stream at expiry
            seen.append(line)
    assert "event: hello" in seen
    gone = http.get("/ui/worklist")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/ui/login")
    assert http.get("/ui/events").status_code == 401  # the browser's reconnect is refused


def test_session_outlives_its_access_token_by_refreshing(
    db_url: str, start_desk: Callable[..., Desk]
) -> None:
    """Access tokens of 2 s, a login of a minute: the desk refreshes the token and stays logged
    in; the refresh token is single use; removing the user ends the session at its next
    refresh."""
    desk = start_desk(
        db_url, auth="builtin", auth_user_token_lifetime=2, auth_user_session_lifetime=60
    )
    db = desk.runtime.services.store.db
    add_users(db)
    http = desk.http
    assert login(http, desk.base, WRITER).status_code == 200
    sid = str(http.cookies["fhirmwl_desk_session"])
    sessions = SessionStore(db)
    first = sessions.get(SESSION, sid)
    assert first is not None and first["refresh"]
    time.sleep(2.5)
    page = http.get("/ui/worklist")
    assert page.status_code == 200 and ">writer</span>" in page.text
    second = sessions.get(SESSION, sid)
    assert second is not None and second["token"] != first["token"]
    assert second["refresh"] != first["refresh"]  # rotated: the first one is spent
    builtin = desk.runtime.services.auth[1]
    spent = {"grant_type": "refresh_token", "refresh_token": first["refresh"]}
    with pytest.raises(OAuthError, match="unknown, was used before"):
        builtin.token({**spent, "client_id": "fhirmwl-desk"})
    users.remove_user(db, "writer")
    time.sleep(2.5)
    gone = http.get("/ui/worklist")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/ui/login")


def test_refresh_race_loser_takes_the_winners_token(
    db_url: str, start_desk: Callable[..., Desk]
) -> None:
    """Two requests of one browser refresh at once: the loser's refresh token is already spent
    while the winner is still storing its new one; the loser waits for it instead of ending the
    session."""
    desk = start_desk(
        db_url, auth="builtin", auth_user_token_lifetime=2, auth_user_session_lifetime=60
    )
    db = desk.runtime.services.store.db
    add_users(db)
    assert login(desk.http, desk.base, WRITER).status_code == 200
    sid = str(desk.http.cookies["fhirmwl_desk_session"])
    sessions = SessionStore(db)
    data = sessions.get(SESSION, sid)
    assert data is not None
    builtin = desk.runtime.services.auth[1]
    form = {"grant_type": "refresh_token", "refresh_token": data["refresh"]}
    answer = builtin.token({**form, "client_id": "fhirmwl-desk"})  # the winner, mid-flight

    def winner_stores() -> None:
        time.sleep(0.3)
        renewed = {"token": answer["access_token"], "refresh": answer["refresh_token"]}
        sessions.replace(SESSION, sid, renewed)

    thread = threading.Thread(target=winner_stores)
    thread.start()
    try:
        claims = desk.runtime.services.desk_login._refresh(sid, data)
    finally:
        thread.join()
    assert claims is not None and claims["sub"] == "writer"
    assert sessions.get(SESSION, sid) is not None
