"""Errors a user can cause, each with the exit code the CLI returns for it.

Exit codes: 0 all passed, 1 a conversion or runtime failed, 2 usage or input error,
3 a tolerance or budget was exceeded. A bug in edgekit is an ``InternalError``.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TOLERANCE = 3


class EdgekitError(Exception):
    """Root of everything a user can cause; printed as one line, no traceback."""

    exit_code = EXIT_USAGE


class InputError(EdgekitError):
    """A file, option or array that edgekit cannot use as given."""


class UnsafeModelError(InputError):
    """Loading the model would run code from the file (Lambda layers, custom objects)."""


class MissingDependencyError(EdgekitError):
    """An optional package needed for this step is not installed."""


class ConversionError(EdgekitError):
    """A converter failed on a valid model."""

    exit_code = EXIT_FAILED


class NotApplicable(ConversionError):
    """A quantization mode or format that cannot take this model (the row is n/a, with why)."""


class RuntimeFailure(EdgekitError):
    """An artifact could not be loaded or run by its runtime."""

    exit_code = EXIT_FAILED


class WriteFailure(EdgekitError):
    """The output could not be written (no space left, permissions, read-only filesystem)."""

    exit_code = EXIT_FAILED


class WorkerCrashed(EdgekitError):
    """A child process running native code died (signal) or hung (timeout)."""

    exit_code = EXIT_FAILED


class DeviceUnavailable(EdgekitError):
    """A device cannot run an artifact here: the GPU was not used, the emulator was refused."""

    exit_code = EXIT_FAILED


class ToleranceExceeded(EdgekitError):
    """An artifact disagrees with the reference beyond its tolerance."""

    exit_code = EXIT_TOLERANCE


class InternalError(Exception):
    """A bug in edgekit itself (not an EdgekitError: it is shown with a traceback)."""
