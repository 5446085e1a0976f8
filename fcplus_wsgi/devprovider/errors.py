"""The one exception type configuration problems raise.

Kept in its own module so identities, config and the CLI share it without import
cycles; the CLI turns it into one sentence on stderr instead of a traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value the development provider cannot serve; the message names it."""
