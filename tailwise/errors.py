"""The exception every stage raises when the data cannot support a command.

A `DataError` means: nothing is wrong with the code, the dataset (or a parameter for it)
is what a person must change. Its message names the file, column or parameter and what to
do; the CLI prints it as one line and exits 3 (`EXIT_BAD_INPUT`), never a traceback.
"""


class DataError(ValueError):
    """The data (or a parameter that fits it to the data) stops this command; the message
    names the file, column or parameter and the fix."""
