"""The request path: route → plan → strategy → miner client and ranker → settle → reply.

May import `gateway.door` (bounds, usage), `router` and `ranking`; nothing here imports
`gateway.commands` or `gateway.web`.
"""
