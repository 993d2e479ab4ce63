"""The project's exceptions for problems the user can fix (bad input, bad file, bad option).

They subclass ``ValueError`` so callers that catch ``ValueError`` keep working; the CLI
reports them in one line (exit code 2), while any other exception is a bug or a
system failure: exit code 1 and a logged traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input or a bad option: the message says what to change."""


class InputTypeError(InputError, TypeError):
    """Input of the wrong kind (not an array, a non-numeric dtype)."""


class NotFittedError(InputError):
    """A segmenter was asked to predict or save before it was fitted."""


#: What the CLI reports in one line with exit code 2: the user can fix these.
USER_ERRORS: tuple[type[BaseException], ...] = (
    InputError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)
