"""Evaluating Python expressions to flow values (:class:`~smesh.apps.flow.Val`).

:class:`Evaluator` knows where values come from (sources, constants, parameters, the
contents of list and dict literals, calls of sanitizers, string methods, functions of the
same file) and how they combine. :class:`smesh.apps.pyflow` walks the statements with it
and records the sinks it reaches.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from smesh.apps.flow import (
    CONSTANT,
    EXTERNAL,
    INPUT,
    NOCONST,
    UNKNOWN,
    FlowStep,
    Val,
    combine,
    fold_binop,
    fold_compare,
    join,
)
from smesh.apps.sinks import ALL_KINDS, is_source, sanitizes

__all__ = ["Env", "Evaluator", "dotted"]

Env = dict[str, Val]

_PURE = frozenset(
    [
        "str",
        "repr",
        "format",
        "list",
        "tuple",
        "set",
        "frozenset",
        "dict",
        "sorted",
        "reversed",
        "min",
        "max",
        "sum",
        "bytes",
        "bytearray",
        "enumerate",
        "zip",
        "map",
        "filter",
        "iter",
        "next",
        "getattr",
    ]
)
_STR_METHODS = frozenset(
    [
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "replace",
        "format",
        "join",
        "encode",
        "decode",
        "title",
        "capitalize",
        "split",
        "rsplit",
        "splitlines",
        "casefold",
        "zfill",
        "center",
        "ljust",
        "rjust",
    ]
)
_MODULES = frozenset(
    [
        "os",
        "sys",
        "re",
        "json",
        "shlex",
        "subprocess",
        "hashlib",
        "base64",
        "binascii",
        "math",
        "time",
        "datetime",
        "random",
        "urllib",
        "pickle",
        "yaml",
        "html",
        "cgi",
        "string",
        "codecs",
        "io",
        "pathlib",
        "shutil",
        "flask",
        "django",
    ]
)
_MUTATORS = frozenset(["append", "extend", "insert", "add", "update", "setdefault"])


def dotted(node: ast.expr) -> str | None:
    """The dotted name of ``node`` (``os.path.join``), as far as it is one."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    if isinstance(node, ast.Call):  # request.args.get(...).strip: keep a readable tail
        inner = dotted(node.func)
        if inner is not None:
            parts.append(inner)
            return ".".join(reversed(parts))
    return None


def _fold_unary(op: str, value: Any) -> object:
    """``not``, ``-``, ``+`` or ``~`` of a plain constant, or NOCONST."""
    try:
        if op == "Not":
            return not value
        if op == "USub":
            return -value
        if op == "UAdd":
            return +value
        if op == "Invert":
            return ~value
    except TypeError:  # -"text" and the like: unknown, not an error
        pass
    return NOCONST


class Evaluator:
    """Gives expressions their flow values; the statement walk builds on it.

    Args:
        lines: the file's lines.
        offset: what to add to a tree's line numbers to get the file's.
    """

    def __init__(self, lines: list[str], offset: int) -> None:
        self.lines = lines
        self.offset = offset
        self.imports: dict[str, str] = {}
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.module: Env = {}
        self.scope = (1, max(1, len(lines)))
        self.recording = True
        self.depth = 0
        self.returns: list[Val] = []
        self.route = False

    # -- helpers -------------------------------------------------------------------------

    def line(self, node: ast.AST) -> int:
        return int(getattr(node, "lineno", 1)) + self.offset

    def code(self, node: ast.AST) -> str:
        n = self.line(node)
        return self.lines[n - 1].strip()[:200] if 1 <= n <= len(self.lines) else ""

    def step(self, node: ast.AST, note: str) -> FlowStep:
        return FlowStep(self.line(node), self.code(node), note)

    def resolve(self, name: str) -> str:
        head, _, rest = name.partition(".")
        target = self.imports.get(head)
        if target is None:
            return name
        return f"{target}.{rest}" if rest else target

    # -- statements ----------------------------------------------------------------------

    # -- hooks the statement walk provides ----------------------------------------------

    def block(self, stmts: Sequence[ast.stmt], env: Env) -> Env:
        """Walk ``stmts`` (a function's body when a call is followed)."""
        raise NotImplementedError

    def bind(self, target: ast.expr, value: Val, env: Env, node: ast.AST) -> None:
        """Assign ``value`` to ``target``."""
        raise NotImplementedError

    def sink(
        self,
        node: ast.Call,
        name: str,
        raw: str,
        method: str,
        args: list[Val],
        kwargs: dict[str, Val],
    ) -> None:
        """Record ``node`` if it is a sink."""
        raise NotImplementedError

    def record(
        self, kind: str, node: ast.AST, arg: ast.expr | ast.AST, value: Val, call: str
    ) -> None:
        """Record a sink of ``kind`` at ``node`` reached by ``value``."""
        raise NotImplementedError

    # -- expressions ---------------------------------------------------------------------

    def expr(self, node: ast.expr | None, env: Env) -> Val:
        if node is None:
            return Val.constant(None)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str) and "PRIVATE KEY-----" in node.value:
                self.record("secret", node, node, Val.constant(), "literal")
            return Val.constant(node.value)
        if isinstance(node, ast.Name):
            return self.name(node, env)
        if isinstance(node, ast.Attribute):
            chain = dotted(node)
            if chain is not None:
                if chain in env:
                    return env[chain]
                source = is_source(self.resolve(chain), call=False)
                if source is not None:
                    return self.source(node, chain, source)
            return self.expr(node.value, env)
        if isinstance(node, ast.Subscript):
            return self.subscript(node, env)
        if isinstance(node, ast.BinOp):
            left, right = self.expr(node.left, env), self.expr(node.right, env)
            if left.level == CONSTANT and right.level == CONSTANT:
                return Val.constant(fold_binop(type(node.op).__name__, left.const, right.const))
            return combine((left, right))
        if isinstance(node, ast.BoolOp):
            values = [self.expr(v, env) for v in node.values]
            return combine(values) if any(v.level for v in values) else Val.constant()
        if isinstance(node, ast.UnaryOp):
            value = self.expr(node.operand, env)
            if value.const is NOCONST:
                return value
            return Val.constant(_fold_unary(type(node.op).__name__, value.const))
        if isinstance(node, ast.Compare):
            values = [self.expr(node.left, env), *(self.expr(c, env) for c in node.comparators)]
            folded = fold_compare([type(o).__name__ for o in node.ops], [v.const for v in values])
            if folded is not NOCONST:
                return Val.constant(folded)
            return combine(values).cleaned(ALL_KINDS)  # a bool is safe anywhere
        if isinstance(node, ast.IfExp):
            test = self.expr(node.test, env)
            if test.const is not NOCONST:
                return self.expr(node.body if test.const else node.orelse, env)
            return join(self.expr(node.body, env), self.expr(node.orelse, env))
        if isinstance(node, ast.Call):
            return self.call(node, env)
        if isinstance(node, ast.JoinedStr):
            parts = [self.expr(v, env) for v in node.values]
            return combine(parts) if any(p.level for p in parts) else Val.constant()
        if isinstance(node, ast.FormattedValue):
            return self.expr(node.value, env)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = tuple(self.expr(e, env) for e in node.elts)
            value = Val.constant().with_items(items)
            if all(i.level == CONSTANT and i.const is not NOCONST for i in items):
                value = Val(CONSTANT, const=tuple(i.const for i in items), items=items)
            return value
        if isinstance(node, ast.Dict):
            table: dict[Any, Val] = {}
            extra: list[Val] = []
            for key, val in zip(node.keys, node.values, strict=True):
                k = self.expr(key, env).const if key is not None else NOCONST
                v = self.expr(val, env)
                if k is NOCONST or not isinstance(k, str | int):
                    extra.append(v)
                else:
                    table[k] = v
            return (
                Val.constant().with_items(table)
                if not extra
                else combine([*table.values(), *extra])
            )
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = dict(env)
            for gen in node.generators:
                self.bind(gen.target, self.expr(gen.iter, inner).elements(), inner, node)
            elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            return combine(self.expr(e, inner) for e in elts)
        if isinstance(node, ast.Await | ast.Starred):
            return self.expr(node.value, env)
        if isinstance(node, ast.NamedExpr):
            value = self.expr(node.value, env)
            self.bind(node.target, value, env, node)
            return value
        return Val(UNKNOWN)

    def name(self, node: ast.Name, env: Env) -> Val:
        if node.id in env:
            return env[node.id]
        source = is_source(self.resolve(node.id), call=False)
        if source is not None:
            return self.source(node, node.id, source)
        if node.id in self.module:
            return self.module[node.id]
        if node.id in ("True", "False", "None"):
            return Val.constant()
        return Val(UNKNOWN)

    def source(self, node: ast.AST, name: str, level: str) -> Val:
        what = "input" if level == "input" else "outside data"
        return Val(
            INPUT if level == "input" else EXTERNAL, path=(self.step(node, f"{what}: {name}"),)
        )

    def subscript(self, node: ast.Subscript, env: Env) -> Val:
        base = self.expr(node.value, env)
        key = self.expr(node.slice, env)
        if isinstance(base.items, dict) and key.const is not NOCONST:
            found = base.items.get(key.const)
            return found if found is not None else base.elements()
        if (
            isinstance(base.items, tuple)
            and isinstance(key.const, int)
            and not isinstance(key.const, bool)
            and -len(base.items) <= key.const < len(base.items)
        ):
            return base.items[key.const]
        if isinstance(base.const, str | bytes | tuple) and isinstance(key.const, int):
            try:
                return Val.constant(base.const[key.const])
            except IndexError:  # an index the constant does not have
                return Val.constant()
        if base.items is not None:
            return base.elements()
        return combine((base, key)) if key.level > base.level else base

    def call(self, node: ast.Call, env: Env) -> Val:
        raw = dotted(node.func) or ""
        name = self.resolve(raw)
        method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
        receiver = None
        if isinstance(node.func, ast.Attribute):
            root = node.func.value
            while isinstance(root, ast.Attribute):
                root = root.value
            module = (
                isinstance(root, ast.Name)
                and root.id not in env
                and (root.id in self.imports or root.id in _MODULES)
            )
            # a module is no data: os.path.join(a, b) is as tainted as a and b
            receiver = None if module else self.expr(node.func.value, env)
        args = [self.expr(a, env) for a in node.args]
        kwargs = {k.arg: self.expr(k.value, env) for k in node.keywords if k.arg}
        for k in node.keywords:
            if k.arg is None:
                args.append(self.expr(k.value, env))
        self.sink(node, name, raw, method, args, kwargs)
        parts = ([receiver] if receiver is not None else []) + args + list(kwargs.values())
        source = is_source(name, call=True)
        if source is not None:
            return self.source(node, name, source)
        kinds = sanitizes(name)
        if kinds:
            return combine(args or parts).cleaned(kinds, self.step(node, f"cleaned by {name}"))
        if method in _MUTATORS | {"pop", "remove"} and isinstance(node.func, ast.Attribute):
            return self.mutate(node.func.value, method, receiver, args, env)
        if method == "get" and receiver is not None and isinstance(receiver.items, dict):
            key = args[0].const if args else NOCONST
            if key in receiver.items:
                return receiver.items[key]
            return (
                combine([receiver.elements(), *args[1:]]) if len(args) > 1 else receiver.elements()
            )
        if method in _STR_METHODS and receiver is not None:
            value = combine(parts)
            if all(p.level == CONSTANT and p.const is not NOCONST for p in parts):
                try:
                    folded = getattr(receiver.const, method)(*(a.const for a in args))
                    return Val.constant(folded if isinstance(folded, str | bytes) else NOCONST)
                except Exception:  # a method the constant does not have
                    return Val.constant()
            return value
        local = raw.removeprefix("self.")
        if local in self.functions and self.depth < 2:
            return self.inline(self.functions[local], node, args, kwargs)
        if name in _PURE or raw in _PURE:
            return combine(parts) if any(p.level for p in parts) else Val.constant()
        if any(p.level > CONSTANT for p in parts):
            return combine(parts)
        if name.startswith(("hashlib.", "base64.", "binascii.", "json.", "os.path.", "math.")):
            return Val.constant()
        return Val(UNKNOWN, path=(self.step(node, f"result of {raw or 'a call'}()"),))

    def mutate(
        self, target: ast.expr, method: str, receiver: Val | None, args: list[Val], env: Env
    ) -> Val:
        name = dotted(target)
        if name is None or receiver is None:
            return Val(UNKNOWN)
        items = receiver.items
        if method == "pop":
            if isinstance(items, tuple) and items:
                index = args[0].const if args else -1
                if isinstance(index, int) and -len(items) <= index < len(items):
                    taken = items[index]
                    rest = list(items)
                    del rest[index]
                    env[name] = receiver.with_items(tuple(rest))
                    return taken
            if isinstance(items, dict) and args and args[0].const in items:
                key = args[0].const
                env[name] = receiver.with_items({k: v for k, v in items.items() if k != key})
                return items[key]
            return receiver.elements()
        if method == "append" and isinstance(items, tuple) and args:
            env[name] = receiver.with_items((*items, args[0]))
        elif (
            method == "insert"
            and isinstance(items, tuple)
            and len(args) == 2
            and isinstance(args[0].const, int)
        ):
            listed = list(items)
            listed.insert(args[0].const, args[1])
            env[name] = receiver.with_items(tuple(listed))
        elif (
            method == "remove"
            and isinstance(items, tuple)
            and args
            and args[0].const is not NOCONST
        ):
            listed = list(items)
            for i, item in enumerate(listed):
                if item.const == args[0].const:
                    del listed[i]
                    break
            env[name] = receiver.with_items(tuple(listed))
        elif method in ("update", "setdefault") and isinstance(items, dict) and args:
            if method == "setdefault" and len(args) == 2 and args[0].const is not NOCONST:
                if args[0].const not in items:
                    env[name] = receiver.with_items({**items, args[0].const: args[1]})
            elif isinstance(args[0].items, dict):
                env[name] = receiver.with_items({**items, **args[0].items})
            else:
                env[name] = combine((receiver, *args))
        else:
            env[name] = combine((receiver, *args))
        return Val.constant(None)

    def inline(
        self,
        fn: ast.FunctionDef | ast.AsyncFunctionDef,
        node: ast.Call,
        args: list[Val],
        kwargs: dict[str, Val],
    ) -> Val:
        """The value a call of a function of this file returns, walked with its arguments."""
        env = dict(self.module)
        params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
        if params and params[0] in ("self", "cls") and isinstance(node.func, ast.Attribute):
            params = params[1:]
        for i, param in enumerate(params):
            if i < len(args):
                env[param] = args[i]
            elif param in kwargs:
                env[param] = kwargs[param]
            else:
                env[param] = Val.constant()
        saved = (self.recording, self.returns, self.route)
        self.recording, self.returns, self.route = False, [], False
        self.depth += 1
        try:
            self.block(fn.body, env)
            returns = self.returns
        finally:
            self.depth -= 1
            self.recording, self.returns, self.route = saved
        if not returns:
            return Val.constant(None)
        value = returns[0]
        for other in returns[1:]:
            value = join(value, other)
        return value.step(self.step(node, f"returned by {fn.name}()"))
