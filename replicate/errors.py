"""Errors that the command line reports as one line with exit status 2 (bad input, missing data)."""


class ReplicateError(Exception):
    """A user-facing error: the message is the whole story, no traceback needed."""


class ConfigError(ReplicateError, ValueError):
    """An invalid configuration value or an unknown name."""


class MissingDataError(ReplicateError):
    """A dataset or pretrained weights that the run needs are not on this machine."""


def unknown_name(kind: str, name: str, valid) -> ConfigError:
    """The error for a name that is not in a registry, listing the valid ones."""
    return ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
