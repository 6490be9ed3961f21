"""The one exception type for bad input: the CLI prints its message on one line."""


class FairtuneError(Exception):
    """Input the user must fix; the message says what is wrong and how to fix it."""
