"""History across sessions and machines: a database of every session's results (store), change points over it
(changepoints), and the trend plot the HTML report shows (plot)."""


class HistoryError(Exception):
    """The history database cannot be used; the message names the database (password hidden) and the cause."""
