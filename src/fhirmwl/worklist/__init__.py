"""The worklist: one query model, one matcher, one index row — shared by C-FIND, the FHIR
worklist query and DICOMweb."""

from fhirmwl.worklist.match import matches
from fhirmwl.worklist.project import project
from fhirmwl.worklist.query import KeyMatch, MatchKind, WorklistQuery, WorklistQueryError
from fhirmwl.worklist.row import ROW_COLUMNS, WORKLIST_DDL, worklist_row
from fhirmwl.worklist.source import (
    InMemorySource,
    SqlWorklistSource,
    WorklistSource,
    create_worklist_table,
    upsert_rows,
)
from fhirmwl.worklist.sql import query_to_sql

__all__ = [
    "ROW_COLUMNS",
    "WORKLIST_DDL",
    "InMemorySource",
    "KeyMatch",
    "MatchKind",
    "SqlWorklistSource",
    "WorklistQuery",
    "WorklistQueryError",
    "WorklistSource",
    "create_worklist_table",
    "matches",
    "project",
    "query_to_sql",
    "upsert_rows",
    "worklist_row",
]
