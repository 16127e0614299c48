"""``fhirmwl validate FILE.json [--profile URL]``: the profile validator from the shell.

Senders test their messages against the guide before they connect; the output is the same
OperationOutcome content the API returns, printed one issue per line.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from fhirmwl.validation import validate
from fhirmwl.validation.issues import Issue, has_errors, sort_issues

_STYLE = {"fatal": "bold red", "error": "red", "warning": "yellow", "information": "cyan"}


def _print_issue(console: Console, issue: Issue) -> None:
    style = _STYLE.get(issue.severity, "")
    where = issue.expression or "-"
    console.print(f"[{style}]{issue.severity.upper():<11}[/] [bold]{where}[/]", highlight=False)
    console.print(f"            {issue.diagnostics}", highlight=False, soft_wrap=True)


def validate_command(file: Path, profile: str | None, console: Console | None = None) -> int:
    """Validate one JSON resource or Bundle; exit 0 = no errors, 1 = errors, 2 = bad input."""
    out = console or Console()
    try:
        resource = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        out.print(f"[red]cannot read {file}: {exc}[/]", highlight=False)
        return 2
    if not isinstance(resource, dict) or "resourceType" not in resource:
        out.print(f"[red]{file} is not a FHIR JSON resource (no resourceType)[/]")
        return 2
    issues = sort_issues(validate(resource, [profile] if profile else None))
    for issue in issues:
        _print_issue(out, issue)
    errors = sum(1 for i in issues if i.is_error)
    warnings = sum(1 for i in issues if i.severity == "warning")
    label = resource.get("resourceType")
    summary = f"{file}: {label}: {errors} error(s), {warnings} warning(s)"
    out.print(f"[{'red' if errors else 'green'}]{summary}[/]", highlight=False)
    return 1 if has_errors(issues) else 0
