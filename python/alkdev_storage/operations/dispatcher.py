"""The dispatcher (docs/0023-operation-specs.md, "Dispatcher").

``Dispatcher(db, kind)`` runs the operations of one database kind on an
open Database:

1. look the operation up (``NotFound`` naming an unknown id);
2. check the call's scopes against the spec's (``ScopeViolation``);
3. validate the input against the spec's input model (``ValidationFailed``
   naming the field; a page size over the limit or a tampered cursor too);
4. run the handler: a query on a reader snapshot (``db.read()``), a
   mutation in one writer transaction (``db.transaction()``) together with
   its events, audit record and request record; with a request id already
   stored, return the stored result and write nothing;
5. validate the output against the spec's output model.

Every statement of a spec is compiled once per dispatcher, access shape
and variant into a native prepared statement. :meth:`Dispatcher.call`
returns the result; :meth:`Dispatcher.call_result` returns it with its
:class:`~alkdev_storage.operations.spec.CallTiming`, and ``observer``
(a constructor argument) receives every call's timing.
:meth:`Dispatcher.batch` runs several calls in one transaction.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from alkdev_storage.database import Database
from alkdev_storage.domain import Sealer
from alkdev_storage.domain.builtin.secret_graph import SecretSealer
from alkdev_storage.domain.models import validation_failed
from alkdev_storage.domain.modules import GraphTypeModule, modules
from alkdev_storage.domain.secrets import Binding, KeyProvider, decrypt_text
from alkdev_storage.errors import OperationalError, ScopeViolation, ValidationFailed
from alkdev_storage.operations import records
from alkdev_storage.operations.context import AccessView, CallContext
from alkdev_storage.operations.cursor import CursorCodec, load_key
from alkdev_storage.operations.spec import (
    CallResult,
    CallTiming,
    Invocation,
    OperationSpec,
    Registry,
)
from alkdev_storage.operations.sqlc import Compiled, compile_statement

__all__ = ["Dispatcher", "Opener", "registry_for"]

Opener = Callable[..., str]
"""Decrypts one secret attribute for output: ``opener(envelope, *, org_id,
table, column, row_id) -> str`` (the counterpart of the domain's
:class:`~alkdev_storage.domain.Sealer`)."""

_REGISTRIES: dict[str, Registry] = {}
_REG_LOCK = threading.Lock()


def registry_for(kind: str) -> Registry:
    """The registry of the generated operations of ``kind`` ("system" or
    "tenant"), built once per process. Dispatchers get a copy they can add
    custom operations to."""
    with _REG_LOCK:
        reg = _REGISTRIES.get(kind)
        if reg is None:
            if kind == "system":
                from alkdev_storage.operations.system_ops import system_specs
                reg = Registry("system", system_specs())
            elif kind == "tenant":
                from alkdev_storage.operations.tenant_ops import tenant_specs
                reg = Registry("tenant", tenant_specs())
            else:
                raise ValueError(f"kind: {kind!r} is not system or tenant")
            _REGISTRIES[kind] = reg
    return Registry(kind, reg.list())


class _Services:
    """What handlers reach through ``invocation.services``."""

    def __init__(self, db: Database, kind: str, org_id: str | None, sealer: Sealer | None,
                 opener: Opener | None) -> None:
        self.db = db
        self.kind = kind
        self.org_id = org_id
        self.sealer = sealer
        self.opener = opener
        self.modules: dict[tuple[str, str], GraphTypeModule] = {}
        self._streams: dict[str, Any] = {}
        self._cursors: CursorCodec | None = None

    def streams(self, name: str) -> Any:
        s = self._streams.get(name)
        if s is None:
            s = self._streams[name] = self.db.stream(name)
        return s

    @property
    def cursors(self) -> CursorCodec:
        if self._cursors is None:
            self._cursors = CursorCodec(load_key(self.db))
        return self._cursors


def _opener(provider: KeyProvider) -> Opener:
    def opener(envelope: str, *, org_id: str, table: str, column: str, row_id: str) -> str:
        return decrypt_text(envelope, Binding(org_id, table, column, row_id), provider)
    return opener


def _admin_modules() -> str:
    return json.dumps(sorted({m.name for m in modules() if m.admin_writes}))


class Dispatcher:
    """Runs the operations of ``kind`` ("system" or "tenant") on ``db``
    (see the module docstring).

    ``registry``: the specs (default: :func:`registry_for(kind)`, a copy:
    add custom specs with ``dispatcher.registry.add``). ``org_id``: the
    tenant file's organization (a non-system principal of another org is
    refused; part of every secret's binding). ``sealer``/``opener``:
    encrypt secret attributes on write / decrypt them on read for calls
    that may (without an opener they read as ``"[redacted]"``).
    ``key_provider``: a :class:`~alkdev_storage.domain.secrets.KeyProvider`
    giving both (the secret graph's ``SecretSealer`` and ``decrypt_text``
    with the row's ``Binding``).
    ``validate_output``: check every result against the spec's output
    model (default True). ``observer``: called with each call's
    :class:`CallTiming`. Thread-safe; one dispatcher per Database."""

    def __init__(self, db: Database, kind: str, *, registry: Registry | None = None,
                 org_id: str | None = None, sealer: Sealer | None = None,
                 opener: Opener | None = None, key_provider: KeyProvider | None = None,
                 validate_output: bool = True,
                 observer: Callable[[CallTiming], None] | None = None) -> None:
        if not isinstance(db, Database):
            raise TypeError(f"db must be an alkdev_storage Database, not {type(db).__name__}")
        self.db = db
        self.kind = kind
        self.registry = registry if registry is not None else registry_for(kind)
        if self.registry.kind != kind:
            raise ValueError(f"registry of kind {self.registry.kind} for a {kind} dispatcher")
        self.org_id = org_id
        if key_provider is not None:
            if org_id is None:
                raise ValueError("key_provider needs the tenant's org_id (part of every "
                                 "secret's binding)")
            sealer = sealer or SecretSealer(key_provider)
            opener = opener or _opener(key_provider)
        self.validate_output = validate_output
        self.observer = observer
        self._services = _Services(db, kind, org_id, sealer, opener)
        self._compiled: dict[tuple[str, str, Any, Any], Compiled] = {}
        self._lock = threading.Lock()
        self._views: dict[Any, AccessView] = {}
        self._admin_modules = _admin_modules()
        try:
            # Load (or create) the cursor key now, outside any call's
            # transaction: created inside a batch that rolls back, it would
            # vanish while this dispatcher kept using it.
            self._services.cursors  # noqa: B018 - loads the key
        except OperationalError:
            pass  # no operation_keys table (a file not migrated): created on first use

    # -- statements -----------------------------------------------------------

    def _ops_compile(self, spec: OperationSpec, name: str, view: AccessView, variant: Any
                 ) -> Compiled:
        key = (spec.id, name, view.shape, variant)
        c = self._compiled.get(key)
        if c is None:
            builder = spec.statements[name]
            with self._lock:
                c = self._compiled.get(key)
                if c is None:
                    c = compile_statement(builder(view, variant), self.db)
                    self._compiled[key] = c
        return c

    def compiled_count(self) -> int:
        """How many statements this dispatcher has compiled (each once)."""
        return len(self._compiled)

    def _view(self, ctx: CallContext) -> AccessView:
        # Cached on the (immutable) context per dispatcher, then by content.
        cached = ctx.__dict__.get("_ops_view")
        if cached is not None and cached[0] is self:
            view: AccessView = cached[1]
            return view
        key = (ctx.principal, ctx.key_scopes, ctx.agent_id, ctx.delegated_scopes)
        v = self._views.get(key)
        if v is None:
            base = AccessView.of(ctx)
            v = AccessView(base.kind, base.manager, base.writer, base.restricted,
                           {**base.params, "acl_admin_modules": self._admin_modules})
            if len(self._views) > 1024:
                self._views.clear()
            self._views[key] = v
        ctx.__dict__["_ops_view"] = (self, v)
        return v

    # -- calls ----------------------------------------------------------------

    def _prepare(self, op_id: str, input: Any, ctx: CallContext) -> tuple[OperationSpec, Any]:
        spec = self.registry.get(op_id)
        if not isinstance(ctx, CallContext):
            raise TypeError(f"ctx must be a CallContext, not {type(ctx).__name__}")
        p = ctx.principal
        if (self.kind == "tenant" and self.org_id is not None and not p.is_system
                and p.org_id != self.org_id):
            raise ScopeViolation(f"{op_id}: a principal of org {p.org_id!r} cannot act in "
                                 f"org {self.org_id!r}")
        if (ctx.key_scopes is not None or ctx.agent_id is not None
                or ctx.delegated_scopes is not None) and not ctx.allows(spec.scope):
            raise ScopeViolation(f"{op_id}: needs scope {spec.scope!r}, which this call's "
                                 "scopes do not grant")
        try:
            data = spec.input_model.__pydantic_validator__.validate_python(
                {} if input is None else input)
        except PydanticValidationError as exc:
            failed = validation_failed(exc, spec.input_model.__name__)
            raise ValidationFailed(f"{op_id}: {failed}", failed.errors, failed.field) from None
        return spec, data

    def _run(self, spec: OperationSpec, data: Any, ctx: CallContext, session: Any
             ) -> tuple[Any, bool]:
        inv = Invocation(spec, ctx, self._view(ctx), session, self.db, self._services,
                         self._ops_compile)
        if spec.kind == "mutation" and ctx.request_id is not None:
            digest = records.fingerprint(spec, data, ctx)
            stored = records.replay(session, spec, ctx, digest)
            if not records.is_missing(stored):
                return stored, True
            value = spec.handler(inv, data)
            records.remember(session, spec, ctx, digest, value)
            return value, False
        return spec.handler(inv, data), False

    def _check_output(self, spec: OperationSpec, value: Any) -> None:
        model = spec.output_model
        if model is None or not self.validate_output:
            return
        try:
            if spec.output_check is not None:
                spec.output_check(value)
            elif spec.output_is_list:
                for item in value:
                    model.__pydantic_validator__.validate_python(item)
            else:
                model.__pydantic_validator__.validate_python(value)
        except Exception as exc:  # a handler bug, not bad input
            raise RuntimeError(f"{spec.id}: the result does not match the output schema: "
                               f"{exc}") from exc

    def call_result(self, op_id: str, input: Mapping[str, Any] | None, ctx: CallContext
                    ) -> CallResult:
        """Like :meth:`call`, returning the value with its timing."""
        t0 = time.perf_counter()
        spec, data = self._prepare(op_id, input, ctx)
        t1 = time.perf_counter()
        if spec.kind == "query":
            with self.db.read() as snap:
                value, replayed = self._run(spec, data, ctx, snap)
        else:
            with self.db.transaction() as tx:
                value, replayed = self._run(spec, data, ctx, tx)
                if replayed:
                    tx.rollback()  # nothing to write
        t2 = time.perf_counter()
        self._check_output(spec, value)
        t3 = time.perf_counter()
        timing = CallTiming(op_id, t1 - t0, t2 - t1, t3 - t2, t3 - t0, replayed)
        if self.observer is not None:
            self.observer(timing)
        return CallResult(value, timing)

    def call(self, op_id: str, input: Mapping[str, Any] | None, ctx: CallContext) -> Any:
        """Run operation ``op_id`` with ``input`` (a JSON-like mapping) for
        ``ctx``; returns its JSON-ready result. Raises ``NotFound``
        (unknown operation; or a row missing or hidden from the caller),
        ``ValidationFailed`` (bad input, naming the field), ``ScopeViolation``
        (not allowed; never says whether a hidden row exists). Nothing is
        written when it raises."""
        if self.observer is not None:
            return self.call_result(op_id, input, ctx).value
        spec, data = self._prepare(op_id, input, ctx)
        if spec.kind == "query":
            with self.db.read() as snap:
                value, _ = self._run(spec, data, ctx, snap)
        else:
            with self.db.transaction() as tx:
                value, replayed = self._run(spec, data, ctx, tx)
                if replayed:
                    tx.rollback()
        self._check_output(spec, value)
        return value

    async def acall(self, op_id: str, input: Mapping[str, Any] | None, ctx: CallContext
                    ) -> Any:
        """:meth:`call` from async code: runs on a worker thread
        (``Database.arun``), so waiting for the writer never blocks the
        event loop."""
        return await self.db.arun(self.call, op_id, input, ctx)

    def batch(self, calls: Iterable[tuple[str, Mapping[str, Any] | None]
                                    | tuple[str, Mapping[str, Any] | None, str | None]],
              ctx: CallContext) -> list[Any]:
        """Run ``calls`` (``(op_id, input)`` or ``(op_id, input,
        request_id)``) in one writer transaction, in order (later calls see
        earlier writes); all commit or none. Without its own request id, a
        call gets ``<ctx.request_id>#<index>`` when the context has one.
        An error names the failing item (``batch item <i> (<op_id>)``) and
        nothing is written."""
        items = list(calls)
        prepared = []
        for i, item in enumerate(items):
            op_id, input, *rest = item
            rid = rest[0] if rest else (f"{ctx.request_id}#{i}" if ctx.request_id else None)
            try:
                spec, data = self._prepare(op_id, input, ctx)
            except Exception as exc:
                exc.add_note(f"batch item {i} ({op_id})")
                raise
            prepared.append((spec, data, ctx.with_request(rid)))
        out = []
        with self.db.transaction() as tx:
            for i, (spec, data, c) in enumerate(prepared):
                try:
                    value, _ = self._run(spec, data, c, tx)
                    self._check_output(spec, value)
                except Exception as exc:
                    exc.add_note(f"batch item {i} ({spec.id})")
                    raise
                out.append(value)
        return out
