"""The breaks: for each defence `docs/reliability.md` cites a test for, a small patch that
undoes the defence, and the cited test that must then fail (tests/integration/test_breaks.py).

A row's `old` text must occur exactly once in its file: when the guarded code moves or
changes, the row fails until it names the code again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Break:
    """One defence undone: `old` becomes `new` in `path`, and `test` must fail."""

    name: str
    path: str
    old: str
    new: str
    test: str

    @property
    def cited(self) -> str:
        """What docs/reliability.md names: the test function, or its file."""
        return self.test.split("::")[-1] if "::" in self.test else self.test


MINER_CLIENT = "router/miner_client.py"
UNIT_CLIENT = "tests/unit/router/test_miner_client.py"
BOUNDS_TESTS = "tests/unit/gateway/test_bounds.py"
PROPERTIES = "tests/unit/gateway/test_request_properties.py"

BREAKS: tuple[Break, ...] = (
    Break(
        "axon policy dials metadata and link-local addresses",
        "router/axon_policy.py",
        "for reason, network in NEVER:",
        "for reason, network in ():",
        "tests/unit/router/test_axon_policy.py",
    ),
    Break(
        "miner redirects are followed",
        MINER_CLIENT,
        "allow_redirects=False\n        ) as resp:\n            if resp.status != 200:\n"
        '                raise MinerHTTPError(resp.status, resp.headers.get("Retry-After"))\n'
        "            return resp.status",
        "allow_redirects=True\n        ) as resp:\n            if resp.status != 200:\n"
        '                raise MinerHTTPError(resp.status, resp.headers.get("Retry-After"))\n'
        "            return resp.status",
        f"{UNIT_CLIENT}::test_a_redirect_is_an_error_and_never_followed",
    ),
    Break(
        "a stream has no size cap",
        "router/sse.py",
        "if size > max_bytes:",
        "if size > 2 * max_bytes + 2**40:",
        f"{UNIT_CLIENT}::test_one_sse_line_over_the_cap_is_invalid",
    ),
    Break(
        "every stream chunk raises",
        MINER_CLIENT,
        "                assembly.add(chunk)\n",
        "                raise RuntimeError(chunk)\n",
        "tests/unit/router/test_sse_properties.py",
    ),
    Break(
        "a reply has no size cap",
        MINER_CLIENT,
        "            if len(raw) + len(chunk) > self.max_reply_bytes:\n"
        "                raise InvalidReply",
        "            if len(raw) + len(chunk) > 2**40:\n                raise InvalidReply",
        f"{UNIT_CLIENT}::test_compressed_body_over_the_cap_is_invalid",
    ),
    Break(
        "the body is parsed before its shape is checked",
        "gateway/door/inflight.py",
        "    check_shape(shape, bounds)\n",
        '    __import__("orjson").loads(b"".join(m.get("body", b"") for m in messages))\n'
        "    check_shape(shape, bounds)\n",
        f"{BOUNDS_TESTS}::test_a_body_of_a_million_tiny_elements_is_refused_before_it_is_parsed",
    ),
    Break(
        "no depth limit",
        "gateway/door/bounds.py",
        "if shape.depth > limits.max_depth:",
        "if shape.depth > 10**9:",
        f"{PROPERTIES}::test_whatever_validates_can_be_ranked_and_forwarded",
    ),
    Break(
        "no limit on messages",
        "gateway/door/bounds.py",
        "len(messages) > limits.max_messages:",
        "len(messages) > 10**9:",
        f"{BOUNDS_TESTS}::test_too_many_messages_and_too_much_text_are_400",
    ),
    Break(
        "no max_tokens limit",
        "gateway/serving/plan.py",
        "        if asked > cap:",
        "        if asked > 10**12:",
        f"{BOUNDS_TESTS}::test_max_tokens_over_the_pools_limit_is_400",
    ),
    Break(
        "every field reaches the miners",
        "gateway/serving/plan.py",
        "if k in allowed and k not in dropped}",
        "if k not in dropped}",
        f"{BOUNDS_TESTS}::test_only_allowed_fields_reach_the_miners",
    ),
    Break(
        "uvicorn's connection limit left unset",
        "gateway/runtime/server.py",
        '"limit_concurrency": server.limit_concurrency or concurrency,',
        '"limit_concurrency": server.limit_concurrency,',
        "tests/unit/gateway/test_server.py::test_uvicorn_limits_sit_above_the_in_flight_limit",
    ),
    Break(
        "plain httptools buffers endless headers",
        "gateway/runtime/server.py",
        '"http": bounded_http(settings),',
        '"http": "httptools",',
        "tests/unit/gateway/test_server.py::test_headers_over_the_cap_get_431_not_an_endless_buffer",
    ),
    Break(
        "a request body that is not JSON raises",
        "gateway/door/ingress.py",
        "    except orjson.JSONDecodeError:\n"
        '        raise BadRequest("The request body is not valid JSON.")',
        '    except KeyError:\n        raise BadRequest("The request body is not valid JSON.")',
        f"{PROPERTIES}::test_any_bytes_are_a_request_or_a_400",
    ),
    Break(
        "a client that leaves lets its miner calls run to the end",
        "gateway/door/ingress.py",
        "        if not task.done():\n            task.cancel()\n",
        "        if not task.done():\n            pass\n",
        "tests/integration/test_edges.py::test_a_client_that_leaves_cancels_its_request_cleanly",
    ),
    Break(
        "a head is awaited without end",
        "gateway/runtime/server.py",
        "    def _await_head(self) -> None:\n",
        "    def _await_head(self) -> None:\n        return\n",
        "tests/unit/gateway/test_server.py::"
        "test_past_the_pending_heads_the_oldest_is_closed_and_callers_are_served",
    ),
    Break(
        "freed reply buffers stay in the heap",
        "gateway/commands/serve.py",
        "    return_large_buffers()\n",
        "",
        "tests/integration/test_hostile_input.py::"
        "test_twenty_dense_2_mib_replies_at_once_cost_the_gateway_under_100_mib",
    ),
    Break(
        "a reply keeps its parsed objects",
        MINER_CLIENT,
        "            reply.answer = answer_of(document, kind)\n",
        "            reply.answer = answer_of(document, kind)\n"
        "            reply.chunks = document\n",
        "tests/integration/test_hostile_input.py::"
        "test_twenty_dense_2_mib_replies_at_once_cost_the_gateway_under_100_mib",
    ),
)
