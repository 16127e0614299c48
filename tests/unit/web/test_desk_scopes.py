"""The desk's page/action permission table (docs/web.md "Login and permissions"), row by row:
which scopes open which page or action, and the message naming the missing scope."""

from __future__ import annotations

import pytest

from fhirmwl.security.scopes import parse_scopes
from fhirmwl.web.guard import NEEDS, refusal
from fhirmwl.web.login import DeskUser, safe_next

READ_ALL = "user/*.rs"
WORK_ORDERS = "user/Task.rs user/ServiceRequest.rs user/ServiceRequest.u user/Task.u"
EVERYTHING = "user/*.cruds"
ALL_PAGES = [k for k in NEEDS if not k.startswith("action:") and k != "replay"]


def _user(scope: str) -> DeskUser:
    return DeskUser("u", parse_scopes(scope), 0, {})


@pytest.mark.parametrize("what", ALL_PAGES)
def test_read_scopes_open_every_page(what: str) -> None:
    assert refusal(_user(READ_ALL), what) is None
    assert refusal(_user("system/*.rs"), what) is None


@pytest.mark.parametrize("what", [k for k in NEEDS if k.startswith("action:")] + ["replay"])
def test_read_scopes_do_not_change_anything(what: str) -> None:
    reason = refusal(_user(READ_ALL), what)
    assert reason is not None and reason.startswith("u may not ")
    assert refusal(_user(EVERYTHING), what) is None


@pytest.mark.parametrize(
    ("scope", "what", "missing"),
    [
        ("user/Task.rs", "worklist", None),
        ("user/Task.rs", "order", "user/ServiceRequest.r"),
        ("user/Task.r", "worklist", "user/Task.s"),
        (WORK_ORDERS, "action:cancel", None),
        (WORK_ORDERS, "action:reschedule", None),
        (WORK_ORDERS, "action:status", None),
        (WORK_ORDERS, "messages", "user/*.s"),
        (WORK_ORDERS, "replay", "user/*.c"),
        ("user/*.rs user/Task.u", "action:status", None),
        ("user/*.rs user/Task.u", "action:station", "user/ServiceRequest.u"),
        ("user/*.rs user/*.u", "replay", "user/*.c"),
        ("user/*.cruds", "subscriptions", None),
        ("patient/*.rs", "worklist", "user/Task.s"),  # patient/ scopes do not open the desk
        ("openid profile", "status", "user/Task.s"),
    ],
)
def test_table_rows(scope: str, what: str, missing: str | None) -> None:
    reason = refusal(_user(scope), what)
    if missing is None:
        assert reason is None
    else:
        assert reason is not None and reason.endswith(f"the login lacks the scope {missing}")


def test_only_desk_pages_are_returned_to() -> None:
    assert safe_next("/ui/order/1?done=x") == "/ui/order/1?done=x"
    for bad in ("https://evil.example/", "//evil.example/ui/", "/ui//evil.example", "/fhir/Task",
                "/ui/\\evil", ""):  # fmt: skip
        assert safe_next(bad) == "/ui/worklist", bad
