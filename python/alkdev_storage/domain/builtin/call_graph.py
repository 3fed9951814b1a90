"""The built-in call graph (``call-graph``): operations, the services that
provide them, and calls of operations with their inputs, outputs, status
and timing; ``calls`` (a call made another call), ``invokes`` (a call ran
an operation), ``provided_by`` (an operation is served by a service) and
``depends_on`` (between operations, services or calls).

Registered as a system-scope graph type in every tenant file
(:func:`alkdev_storage.domain.graphs.init_tenant`). Change it only with a
new version: tenant files upgrade their stored type to it on
``init_tenant``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, JsonValue

from alkdev_storage.domain.modules import Attributes, EdgeType, GraphTypeModule, NodeType

__all__ = [
    "CALL_GRAPH",
    "CallAttributes",
    "CallStatus",
    "CallsAttributes",
    "DependsOnAttributes",
    "OperationAttributes",
    "ServiceAttributes",
]

Name = Annotated[str, Field(min_length=1, max_length=200)]
Millis = Annotated[int, Field(ge=0, le=2**63 - 1)]

CallStatus = Literal["requested", "running", "succeeded", "failed", "cancelled", "timed_out"]
"""Lifecycle of a call (the call protocol's ``call.requested`` ...
``call.responded`` events)."""


class OperationAttributes(Attributes):
    """An operation that can be called: its id (``graphs.create``), version
    and the JSON Schemas of its input and output."""

    operation_id: Name
    version: Annotated[str, Field(max_length=64)] | None = None
    description: str | None = None
    input_schema: dict[str, JsonValue] | None = None
    output_schema: dict[str, JsonValue] | None = None


class ServiceAttributes(Attributes):
    """A service (a process, a spoke, a remote endpoint) providing
    operations."""

    name: Name
    endpoint: Annotated[str, Field(max_length=2048)] | None = None
    version: Annotated[str, Field(max_length=64)] | None = None


class CallAttributes(Attributes):
    """One call of an operation: input, output or error, status and
    timing. ``duration_ms`` is wall time from start to finish."""

    operation_id: Name
    status: CallStatus = "requested"
    input: JsonValue = None
    output: JsonValue = None
    error: dict[str, JsonValue] | None = None
    requested_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    timeout_ms: Millis | None = None
    duration_ms: Millis | None = None
    account_id: str | None = None
    agent_id: str | None = None


class CallsAttributes(Attributes):
    """A call made another call; ``order`` is its position among the
    caller's calls, when known."""

    order: Annotated[int, Field(ge=0)] | None = None


class DependsOnAttributes(Attributes):
    """The source needs the target; ``optional`` when it can do without."""

    optional: bool = False
    reason: str | None = None


CALL_GRAPH = GraphTypeModule(
    name="call-graph",
    version="1.0.0",
    description="Operations, services and calls with their inputs, outputs and timing.",
    node_types=(
        NodeType("operation", OperationAttributes, "an operation that can be called"),
        NodeType("service", ServiceAttributes, "a service providing operations"),
        NodeType("call", CallAttributes, "one call of an operation"),
    ),
    edge_types=(
        EdgeType("calls", CallsAttributes, "a call made another call"),
        EdgeType("invokes", Attributes, "a call ran an operation"),
        EdgeType("provided_by", Attributes, "an operation is served by a service"),
        EdgeType("depends_on", DependsOnAttributes, "the source needs the target"),
    ),
    triples=frozenset({
        ("call", "calls", "call"),
        ("call", "invokes", "operation"),
        ("operation", "provided_by", "service"),
        ("operation", "depends_on", "operation"),
        ("service", "depends_on", "service"),
        ("call", "depends_on", "call"),
    }),
)
"""The call graph module, version 1.0.0."""
