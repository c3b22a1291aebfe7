"""`make soak`: mixed traffic at half capacity for a long while, watching what the gateway holds.

`python -m load.soak` starts a simulated pool with faulty miners and a gateway on loopback,
measures the gateway's capacity under the mix, then drives half of it (streams, races,
disconnects, big prompts, bad requests, miner faults) and samples RSS, open fds and sockets,
asyncio tasks and latency every interval. After the warm-up nothing may grow more than 10%:
the report says which figure grew, and the exit status is 1.
"""
