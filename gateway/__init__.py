"""The gateway: an OpenAI-compatible app in front of miner pools.

`app`, `state`, `config`, `errors` and `protocol` wire it together; `door/` decides who may
call and how much, `serving/` turns a request into miner calls and an answer, `runtime/`
holds the process's long-lived parts, `web/` the chat page, `commands/` the `bitgate` CLI.
"""
