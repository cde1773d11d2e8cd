"""The hardware a run is on, what it can do on paper, and what it does while a server runs."""
