"""Locust driving a bitgate scenario: `BITGATE_SCENARIO=s.yaml locust -f load/locustfile.py`.

The scenario's target, model, prompts, max_tokens, stream share and `bitgate` options shape
every request; a metagraph target spreads requests over the pool's miners, each its own row in
Locust's table. A closed loop is `-u CONCURRENCY` users with no wait; an open-loop `rate` is
approximated by a constant throughput of rate / users per user (Locust has no true open loop;
`bitgate load --rate` has). Without Locust installed this module imports and defines no user.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import time
from pathlib import Path
from typing import Any

from load.bodies import Planned, Planner
from load.client import DATA, DONE, JSON_HEADERS, Reply, read_body
from load.prompts import load_prompts
from load.scenario import Scenario, load_scenario
from load.targets import Target, resolve

SCENARIO_ENV = "BITGATE_SCENARIO"


def scenario_from_env() -> Scenario:
    """The scenario named by `BITGATE_SCENARIO`."""
    path = os.environ.get(SCENARIO_ENV)
    if not path:
        raise RuntimeError(f"set {SCENARIO_ENV} to a scenario YAML file")
    return load_scenario(Path(path))


def stream_error(lines: list[bytes]) -> str | None:
    """Why a streamed reply is bad (no `[DONE]`, an error event), or None."""
    events = [line[len(DATA) :].strip() for line in lines if line.startswith(DATA)]
    if any(b'"error"' in event for event in events):
        return "stream_error"
    return None if events and events[-1] == DONE else "stream_incomplete"


def request_name(planned: Planned) -> str:
    """The row a request counts under: its miner in a pool, else its kind."""
    kind = "stream" if planned.stream else "json"
    return f"miner {planned.uid} {kind}" if planned.uid is not None else f"gateway {kind}"


def make_user(scenario: Scenario, target: Target) -> type[Any]:
    """A Locust `HttpUser` class that sends the scenario's requests."""
    from locust import HttpUser, constant, constant_throughput, task

    planner = Planner(scenario, target, load_prompts(scenario.prompts))
    sent = itertools.count()
    # Like `bitgate load`, the run stops by itself: after its requests or its time.
    deadline = time.monotonic() + scenario.warmup_s + scenario.limit_s

    class BitgateUser(HttpUser):
        """One simulated client of the scenario."""

        host = target.endpoints[0].url
        users = scenario.workers
        wait_time = (
            constant(0)
            if scenario.rate is None
            else constant_throughput(scenario.rate / max(scenario.workers, 1))
        )

        @task
        def complete(self) -> None:
            """Send the next request of the scenario and check its reply."""
            limit = scenario.requests
            if (limit is not None and next(sent) >= limit) or time.monotonic() > deadline:
                if self.environment.runner is not None:
                    self.environment.runner.quit()
                return
            planned = planner.next()
            name = request_name(planned)
            started = time.perf_counter()
            with self.client.post(
                planned.url,
                data=planned.body,
                headers={**JSON_HEADERS, **scenario.headers},
                stream=planned.stream,
                name=name,
                timeout=scenario.timeout_s,
                catch_response=True,
            ) as resp:
                if resp.status_code != 200:
                    resp.failure(f"http_{resp.status_code}")
                    return
                error = self._check(resp, planned, started, name)
                if error is not None:
                    resp.failure(error)

        def _check(self, resp: Any, planned: Planned, started: float, name: str) -> str | None:
            if not planned.stream:
                reply = Reply(ended_at=time.perf_counter())
                read_body(reply, resp.content)
                return reply.error
            lines: list[bytes] = []
            for line in resp.iter_lines():
                if not lines and line.startswith(DATA):
                    ttft_ms = (time.perf_counter() - started) * 1000.0
                    self.environment.events.request.fire(
                        request_type="TTFT",
                        name=name,
                        response_time=ttft_ms,
                        response_length=0,
                        exception=None,
                    )
                lines.append(line)
            return stream_error(lines)

    return BitgateUser


def _define() -> None:
    """Define the user class when Locust runs this file with a scenario (never imports Locust
    otherwise: importing it monkey-patches the whole process with gevent)."""
    if importlib.util.find_spec("locust") is None:
        return
    if os.environ.get(SCENARIO_ENV):
        scenario = scenario_from_env()
        globals()["BitgateUser"] = make_user(
            scenario, resolve(scenario.target, scenario.allow_remote)
        )


_define()
