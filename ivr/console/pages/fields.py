"""The query-string and form fields more than one page takes, by what they hold, each
with its one length limit (a longer value answers 422 before the handler runs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Query

# posted by a form
IdField = Annotated[str, Form(max_length=40)]  # an object's id: merchant, customer, endpoint…
CodeField = Annotated[str, Form(max_length=20)]  # a one-time code from an authenticator app
ConfirmField = Annotated[str, Form(max_length=10)]  # a confirmation box: "yes" when ticked

# in the query string
IdParam = Annotated[str | None, Query(max_length=40)]  # ?merchant=, ?deleted=<card id>…
StatusParam = Annotated[str | None, Query(max_length=24)]  # a list's status filter
CursorParam = Annotated[str | None, Query(max_length=100)]  # the page after this cursor
FlagParam = Annotated[str | None, Query(max_length=4)]  # ?created=1: set or not


def before_id(before: Annotated[str, Query(max_length=18)] = "") -> int | None:
    """``?before=`` of a list paged by a numeric id, newest first (anything else: the
    first page)."""
    return int(before) if before.isdecimal() else None


Before = Annotated[int | None, Depends(before_id)]
