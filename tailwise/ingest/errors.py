"""The one exception ingestion raises for input a person must fix."""


class IngestError(ValueError):
    """A source file or mapping cannot be used; the message names the file, column and fix."""
