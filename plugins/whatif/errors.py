"""Errors that reach the user as one line, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or arguments: exit code 2, one clear line.

    `file`, `row` and `column` say where the problem is, so that the user can fix it
    without reading a traceback; `hint` says what to do next.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        self.hint = hint

    def __str__(self) -> str:
        where = [part for part in (self.file, self._row_text(), self._column_text()) if part]
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        # One line whatever the input held: a line break, a control character or a bidi mark
        # in a column name or a quoted value is shown escaped, never acted on.
        return printable(f"{text} ({self.hint})" if self.hint else text)

    def _row_text(self) -> str | None:
        return f"row {self.row}" if self.row is not None else None

    def _column_text(self) -> str | None:
        return f"column {shown(self.column)}" if self.column else None


def printable(text: str) -> str:
    """`text` with every character that is not printable (line breaks, control characters,
    bidi and other format marks) written as its escape, as repr() writes it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(value: object, limit: int = 60) -> str:
    """A value from the input as a message quotes it: printable, and cut to `limit`
    characters (a 100 kB cell must not make a 100 kB error line)."""
    text = printable(str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."
