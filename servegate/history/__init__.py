"""History across sessions and machines: a database of every session's results (store), change points over it
(changepoints), and the trend plot the HTML report shows (plot)."""
