"""The root of the errors a user's input causes: commands print them as one line and exit 1."""


class UserError(Exception):
  """Bad input from the user: main prints the message as one line, without a traceback."""
