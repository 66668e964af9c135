"""The exceptions unicomp raises on purpose.

Every error a user can cause is a :class:`UnicompError`; the CLI turns each one into a
single line on stderr and the exit code below, so scripts can tell the cases apart.
"""

from __future__ import annotations

#: Exit code of an error unicomp did not raise on purpose (a bug).
INTERNAL_EXIT_CODE = 70


class UnicompError(Exception):
    """Base of every error unicomp raises deliberately."""

    exit_code = 1


class UsageError(UnicompError):
    """The command line asked for something inconsistent (bad option value, output exists)."""

    exit_code = 2


class OutputExistsError(UsageError):
    """The output file exists and overwriting was not asked for (a folder run skips it)."""


class InputError(UnicompError):
    """The user's input file or argument is unusable."""

    exit_code = 3


class FormatError(UnicompError):
    """A .ucz file is malformed, truncated or corrupted."""

    exit_code = 4


class ModelError(UnicompError):
    """A model is missing, mismatched with a file, or its weights were tampered with."""

    exit_code = 5


class PluginError(UnicompError):
    """A plugin registered something invalid or conflicting."""

    exit_code = 6


class TrainingError(UnicompError):
    """A training run diverged again and again, or before anything could be restored."""

    exit_code = 7
