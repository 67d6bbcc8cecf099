"""The one base class for problems a user can fix; the CLI prints their message as one line and exits non-zero."""


class FallwatchError(Exception):
    """A user-fixable problem (bad input, config, weights, device or output); the message is one line."""

    exit_code = 1


class UsageError(FallwatchError):
    """A wrong option or config value."""

    exit_code = 2
