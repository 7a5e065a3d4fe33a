"""The one exception ingestion raises for input a person must fix."""


class IngestError(ValueError):
    """A source file or mapping cannot be used; the message names the file, column and fix."""


class IngestStopped(IngestError):
    """The data was read, but a table keeps nothing or one reason removes too much of it;
    the message names the table, reason, count and the parameter or column to change."""
