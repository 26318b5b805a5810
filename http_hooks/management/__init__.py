"""The app's management commands share their exit status for bad arguments."""

# As argparse's own: 1 means what the command reports ("limit reached", a failed run).
BAD_ARGUMENTS = 2
