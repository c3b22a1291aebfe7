"""`make chaos`: the production topology on loopback, broken on purpose under load."""
