"""``@tool``: a typed Python function (sync or async) becomes a :class:`Tool`.

The name is the function's, the description its docstring (Google style: the
``Args:`` lines become per-parameter descriptions), and the JSON schema comes from its
type hints through msgspec: the signature is turned into a msgspec Struct, whose schema
is what the model sees and whose decoder validates (and converts) the arguments before
the call. A model's bad arguments therefore never reach the function::

    @tool
    def add(a: int, b: int = 0) -> int:
        \"\"\"Add two integers.

        Args:
            a: the first term.
            b: the second term.
        \"\"\"
        return a + b

    @tool(side_effect=True, timeout_s=10)
    async def send_email(to: str, body: str, ctx: CallContext) -> str:
        return await mailer.send(to, body, idempotency_key=ctx.effect_id)

Sync functions run in a worker thread of a pool kept for tools, so a slow one blocks
neither the event loop nor its timeout, and hung tools cannot starve the event loop's
default executor (which DNS lookups and the effect ledger rely on). A thread cannot be
killed: a sync tool that ignores time keeps its thread until it returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, overload

import msgspec

from smesh.errors import ToolError, UsageError
from smesh.tools._docstring import parse_docstring
from smesh.tools.base import DEFAULT_TIMEOUT_S, CallContext, Reconciled, Tool, check_tool_name

__all__ = ["FunctionTool", "tool"]

Reconciler = Callable[..., Reconciled | Awaitable[Reconciled | None] | None]

_IMMUTABLE_DEFAULTS = (str, int, float, bool, bytes, type(None), tuple, frozenset)
_TOOL_THREADS = 32
_pool: ThreadPoolExecutor | None = None


def _tool_pool() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one pool per process, made on first use
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_TOOL_THREADS, thread_name_prefix="smesh-tool")
    return _pool


def _field(name: str, hint: Any, default: Any) -> tuple[Any, ...]:
    if default is inspect.Parameter.empty:
        return (name, hint)
    if isinstance(default, (*_IMMUTABLE_DEFAULTS, msgspec.Struct)):
        return (name, hint, default)

    # a list or dict default must not be shared between calls
    def fresh() -> Any:
        return copy.deepcopy(default)

    return (name, hint, msgspec.field(default_factory=fresh))


def _build(
    fn: Callable[..., Any], name: str, arg_docs: dict[str, str]
) -> tuple[type[msgspec.Struct], dict[str, Any], str | None]:
    """The arguments Struct, its JSON schema, and the name of a CallContext parameter."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as exc:
        raise UsageError(f"tool {name}: cannot resolve its type hints ({exc})") from None
    fields: list[tuple[Any, ...]] = []
    ctx_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise UsageError(f"tool {name}: *args and **kwargs cannot be described to a model")
        if param.kind is param.POSITIONAL_ONLY:
            raise UsageError(f"tool {name}: positional-only parameters are not supported")
        hint = hints.get(param.name, Any)
        if hint is CallContext:
            ctx_param = param.name
            continue
        fields.append(_field(param.name, hint, param.default))
    struct_name = f"{name}_arguments"
    try:
        args_type = msgspec.defstruct(
            struct_name, fields, kw_only=True, forbid_unknown_fields=True, frozen=True
        )
        full = msgspec.json.schema(args_type)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"tool {name}: its parameters have no JSON schema ({exc})") from None
    defs: dict[str, Any] = full.get("$defs", {})
    schema: dict[str, Any] = dict(defs.pop(struct_name))
    schema.pop("title", None)
    schema.pop("description", None)
    if not schema.get("required", True):
        del schema["required"]  # an empty list is invalid in older JSON Schema drafts
    props: dict[str, Any] = schema.setdefault("properties", {})
    for param_name, text in arg_docs.items():
        if param_name in props and text:
            props[param_name] = {**props[param_name], "description": text}
    if defs:
        schema["$defs"] = defs
    return args_type, schema, ctx_param


class FunctionTool(Tool):
    """A tool made from a Python function (see :func:`tool`).

    Calling the object calls the function itself, so it stays testable as plain Python.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        side_effect: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        concurrent: bool = True,
    ) -> None:
        if not callable(fn):
            raise UsageError(f"@tool needs a function, not {fn!r}")
        tool_name = check_tool_name(name or str(getattr(fn, "__name__", "")))
        summary, arg_docs = parse_docstring(inspect.getdoc(fn))
        args_type, schema, ctx_param = _build(fn, tool_name, arg_docs)
        super().__init__(
            name=tool_name,
            description=description if description is not None else summary,
            parameters=schema,
            side_effect=side_effect,
            timeout_s=timeout_s,
            concurrent=concurrent,
        )
        self.fn = fn
        self.args_type = args_type
        self._fields: tuple[str, ...] = args_type.__struct_fields__
        self._ctx_param = ctx_param
        self._is_async = inspect.iscoroutinefunction(fn)
        self._reconciler: Reconciler | None = None
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly."""
        return self.fn(*args, **kwargs)

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Decode ``args`` into the parameters' types (lenient on "5" for 5).

        Raises:
            ToolError: a missing, unknown or mistyped argument.
        """
        try:
            decoded = msgspec.convert(args, self.args_type, strict=False)
        except msgspec.ValidationError as exc:
            raise ToolError(f"invalid arguments for {self.name}: {exc}", tool=self.name) from None
        return {f: getattr(decoded, f) for f in self._fields}

    async def invoke(self, args: dict[str, Any], ctx: CallContext) -> Any:
        """Call the function with validated ``args`` (sync functions in a worker thread)."""
        if self._ctx_param is not None:
            args = {**args, self._ctx_param: ctx}
        if self._is_async:
            return await self.fn(**args)
        call = functools.partial(contextvars.copy_context().run, self.fn, **args)
        return await asyncio.get_running_loop().run_in_executor(_tool_pool(), call)

    def reconciler(self, fn: Reconciler) -> Reconciler:
        """Decorator: register how to tell whether a lost side effect happened.

        ``fn`` takes the tool's own arguments and returns :class:`Reconciled` (or None
        when it cannot tell); it may be async.
        """
        self._reconciler = fn
        return fn

    async def reconcile(self, args: dict[str, Any]) -> Reconciled | None:
        """Ask the registered reconciler, if any (see :meth:`reconciler`)."""
        if self._reconciler is None:
            return None
        found = self._reconciler(**args)
        if inspect.isawaitable(found):
            found = await found
        if found is not None and not isinstance(found, Reconciled):
            raise UsageError(f"tool {self.name}: a reconciler returns Reconciled or None")
        return found


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    concurrent: bool = True,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    concurrent: bool = True,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Turn a function into a :class:`FunctionTool`; use bare or with options.

    Args:
        fn: the function (when used bare, as ``@tool``).
        name: the tool's name (default: the function's).
        description: what the model is told (default: the docstring's description).
        side_effect: it changes the world; calls are recorded before they run and never
            repeated after a crash.
        timeout_s: the longest one call may take.
        concurrent: calls may overlap; when False they run one at a time.

    Raises:
        UsageError: the function's parameters cannot be described by a JSON schema.
    """

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(
            f,
            name=name,
            description=description,
            side_effect=side_effect,
            timeout_s=timeout_s,
            concurrent=concurrent,
        )

    return wrap(fn) if fn is not None else wrap
