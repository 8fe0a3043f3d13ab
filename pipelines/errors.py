"""Errors in what a user handed us: a file, a column, an option."""


class InputError(Exception):
    """Bad input data. The message names the file, the line or column, and what was expected."""


class UnknownUserId(InputError):
    """A user id that neither the warehouse nor the model knows."""


class BrokenBundle(Exception):
    """A model version's serving bundle is missing or unreadable."""


class PhotoError(InputError):
    """A photo that cannot be used: unreadable, too large, or without a face."""


class StaleModel(BrokenBundle):
    """A model version trained on another data snapshot than the warehouse holds now."""
