"""One error type for everything a user can get wrong.

The CLI turns a :class:`SafemicroError` into a single line on stderr and exit code 2;
the library raises it instead of letting a traceback from a dependency escape.
"""

from __future__ import annotations


class SafemicroError(Exception):
    """A problem with the user's input: names the file, the column and the row when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
        step: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.column = column
        self.row = row
        self.step = step
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"file {self.file}")
        if self.step:
            where.append(f"step {self.step}")
        if self.column:
            where.append(f"column {self.column!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        return f"{', '.join(where)}: {self.message}" if where else self.message
