"""The door: who is calling, their limits and usage, and bounds on what they send.

Runs before any route. May import `gateway.config`, `gateway.errors`, `gateway.protocol` and
`gateway.runtime.metrics`; never `gateway.serving`.
"""
