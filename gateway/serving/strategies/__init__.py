"""Serving strategies, one module each, and the registry the route serves through.

| name      | what it does                                                              |
|-----------|---------------------------------------------------------------------------|
| `best_of` | waits for the candidates that can still win (`wait: all`: every one), ranks |
| `race`    | returns the first usable reply; a streaming client gets it live            |
| `cascade` | asks the best-known candidates first, widens only while not confident      |

A new strategy is one module with a class that takes `(client, stages)` and has
`async serve(plan) -> Served` (`base.py`), and one line in `STRATEGIES` (`registry.py`). The
fan-out they share is `fanout.py`; the adaptive wait of best_of and cascade, `waiting.py`.
"""
