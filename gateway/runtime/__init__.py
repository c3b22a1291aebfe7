"""The process's long-lived parts: pools and their metagraphs, metrics, the loop supervisor,
tracing, and uvicorn's own limits. Imports neither `gateway.serving` nor `gateway.door`."""
