"""The desk login in a real headless Chromium (Playwright, Debian's chromium), SQLite and
PostgreSQL: the built-in server's login form, the worklist with live updates over the session,
no action forms for a read-only user (the page names the missing scope), the cancel done by a
user with write scopes, and the logout."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from fhirmwl.security import users
from tests.integration.web.conftest import Desk, today
from tests.integration.web.messages import omi

pytestmark = [pytest.mark.browser]


def _log_in(page: Any, base: str, name: str, password: str) -> None:
    page.goto(f"{base}/ui/worklist")
    page.wait_for_url(re.compile(r"/auth/authorize\?"))
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/ui/worklist$"))


def test_login_then_scopes_decide_the_actions(
    db_url: str, start_desk: Callable[..., Desk], page: Any
) -> None:
    desk = start_desk(db_url, auth="builtin")
    db = desk.runtime.services.store.db
    users.add_user(db, "reader", "reader-password", "user/*.rs")
    users.add_user(db, "writer", "writer-password", "user/*.cruds")
    message, acc, _ = omi("LOGIN^LISA", today())
    desk.send_ok(message)

    _log_in(page, desk.base, "reader", "reader-password")
    assert page.locator("header .who").inner_text() == "reader"
    row = page.locator("table.worklist tbody tr[data-task]")
    assert row.count() == 1 and "LOGIN, LISA" in row.first.inner_text()
    # the event stream has the session (a locator wait: the CSP refuses script evaluation)
    page.locator("#live", has_text=re.compile(r"^\s*Live")).wait_for(timeout=15000)
    desk.send_ok(omi("LATER^LEO", today())[0])  # arrives live, no reload
    page.get_by_text("LATER, LEO").wait_for()

    page.get_by_role("link", name=acc).click()
    page.wait_for_url(re.compile(r"/ui/order/"))
    # a reader is shown no action forms, only which scope the actions need
    assert page.get_by_role("button", name="Cancel order").count() == 0
    assert page.get_by_role("button", name="Change status").count() == 0
    note = page.get_by_role("note").filter(has_text="may not cancel an order")
    assert "user/ServiceRequest.u" in note.inner_text()
    assert page.locator(".badge.on").first.is_visible()  # still on the worklist

    page.get_by_role("button", name="Log out").click()
    page.get_by_text("You are logged out of the desk.").wait_for()
    page.goto(f"{desk.base}/ui/worklist")
    page.wait_for_url(re.compile(r"/auth/authorize\?"))  # no session any more

    _log_in(page, desk.base, "writer", "writer-password")
    page.get_by_role("link", name=acc).click()
    page.wait_for_url(re.compile(r"/ui/order/"))
    page.get_by_label("Reason").fill("patient declined")
    page.get_by_role("button", name="Cancel order").click()
    page.get_by_text("The order was cancelled.").wait_for()
    assert page.locator(".badge.off").first.is_visible()
