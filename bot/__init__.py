"""StyleBot: the Discord bot in front of the stylecore engine (run with `python -m bot`)."""
