"""Serving strategies, one module each, and the registry the route serves through.

| name      | what it does                                                              |
|-----------|---------------------------------------------------------------------------|
| `best_of` | waits for every candidate (or the deadline), ranks, returns the best       |
| `race`    | returns the first usable reply; a streaming client gets it live            |

A new strategy is one module with a class that takes `(client, stages)` and has
`async serve(plan) -> Served` (`base.py`), and one line in `STRATEGIES` (`registry.py`). The
fan-out they share is `fanout.py`.
"""
