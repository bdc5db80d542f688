"""Error types that map to the CLI's exit codes (see DESIGN.md)."""


class FilmcolorError(Exception):
    """Base of expected errors: the CLI prints one line and no traceback."""

    exit_code = 1


class InputError(FilmcolorError):
    """Bad input or usage: exit code 2, nothing is written at the destination."""

    exit_code = 2


class ShardFailures(FilmcolorError):
    """The job ran but some shards failed; the run record says which."""

    exit_code = 1
