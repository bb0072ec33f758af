"""The error hierarchy: one root, messages that say how to fix the problem."""

from __future__ import annotations


class FedsearchError(Exception):
    """Root of every error fedsearch raises on purpose.

    The CLI prints ``str(error)`` as one line and exits with status 2, so a
    message names the problem and the fix and needs no traceback.
    """


class ConfigError(FedsearchError):
    """A study or search-space file (or a CLI option) is invalid.

    Args:
        message: What is wrong and how to fix it.
        source: The file (or option) the problem is in.
        field: Dotted path of the offending field inside the file, if any.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.message = message
        self.source = source
        self.field = field
        location = ": ".join(part for part in (source, field) if part)
        super().__init__(f"{location}: {message}" if location else message)


class PluginError(FedsearchError):
    """A plugin failed to load, registered something invalid, or failed at run time.

    Args:
        message: What is wrong and how to fix it.
        plugin: Name of the plugin at fault.
    """

    def __init__(self, message: str, *, plugin: str):
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class ArtifactError(FedsearchError):
    """A compressed-model artifact is corrupt, truncated or of an unknown version."""


class DivergenceError(FedsearchError):
    """Training diverged: a loss became NaN or infinite.

    Raised inside a trial, it marks that trial FAIL (the study goes on); the
    usual fix is a smaller learning rate or a narrower search range.
    """


class TrialFailuresError(FedsearchError):
    """A worker saw too many trials in a row fail and stopped.

    Args:
        count: How many trials failed in a row.
        last_error: ``type: message`` of the last failure.
    """

    def __init__(self, count: int, last_error: str):
        self.count = count
        self.last_error = last_error
        super().__init__(
            f"{count} trials in a row failed (last: {last_error}); see the trials' "
            "error_type, error and traceback user attributes (fedsearch status, "
            "optuna-dashboard), fix the cause, and run again (finished trials are kept)"
        )
