"""``local``: the embedded model, run in-process by xllamacpp.

One :class:`LocalBackend` owns one llama.cpp server with ``n_parallel`` slots; concurrent
``complete`` calls run in worker threads and the server batches them (continuous
batching), which is where the parallel speed-up comes from. The same server also listens
on an OpenAI-compatible endpoint on 127.0.0.1 (:attr:`LocalBackend.base_url`).

Every call, ``complete`` included, is a streamed generation whose per-chunk callback asks
llama.cpp to stop once the call is cancelled (a budget, Ctrl-C, a timeout around it): the
slot is freed at the next token or prompt step instead of generating on in the
background. Threads and slots come from :func:`embedded_settings`, the one place that
reads ``SMESH_THREADS`` and ``SMESH_SLOTS``.

Model choice: ``local`` (Qwen2.5-Coder-0.5B, the default), ``local:1.5b`` (optional extra),
``local:/path/to/model.gguf``, or ``$SMESH_MODEL_PATH`` for a bare ``local``.

Tool calling (``tool_mode``: native llama.cpp tool calls or schema-constrained JSON) lives
in :mod:`smesh.backends.local_tools`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smesh.backends.base import (
    BackendBase,
    Request,
    Response,
    TruncatedResponse,
    reject_tools_in_stream,
)
from smesh.backends.local_settings import (
    SLOTS_ENV,
    THREADS_ENV,
    EmbeddedSettings,
    embedded_settings,
    positive,
)
from smesh.backends.local_tools import (
    ToolMode,
    add_tool_deltas,
    check_tool_mode,
    json_tool_body,
    native_tool_response,
    parse_json_reply,
    plan_tools,
)
from smesh.backends.model import MODELS, ensure_model, spec_for
from smesh.backends.openai import chat_body
from smesh.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    ModelNotFound,
    UsageError,
)

__all__ = [
    "SLOTS_ENV",
    "THREADS_ENV",
    "EmbeddedSettings",
    "LocalBackend",
    "create",
    "embedded_settings",
    "resolve_model_path",
]

DEFAULT_MODEL = "0.5b"
Chunk = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Generation:
    """One generation in flight: its worker's future, a loop-side waiter, its stop flag."""

    future: Future[list[Chunk]]
    waiter: asyncio.Future[list[Chunk]]
    stop: threading.Event


def resolve_model_path(model: str | None) -> tuple[Path | None, str, str]:
    """Return ``(explicit_path, embedded_name, label)`` for a ``local[:MODEL]`` string.

    ``explicit_path`` is None when the model comes from the data wheels (``embedded_name``).
    """
    if model is None:
        env = os.environ.get("SMESH_MODEL_PATH")
        if env:
            path = Path(env).expanduser()
            return path, "", path.stem
        model = DEFAULT_MODEL
    if model in MODELS:
        return None, model, Path(MODELS[model].filename).stem
    if model.endswith(".gguf") or os.sep in model:
        path = Path(model).expanduser()
        return path, "", path.stem
    spec_for(model)  # raises UnknownName listing the known names
    raise AssertionError("unreachable")  # pragma: no cover


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise BackendUnavailable(
            "the embedded model needs xllamacpp; run: pip install 'smesh[local]'",
            backend="local",
        ) from None
    return xllamacpp


class LocalBackend(BackendBase):
    """The embedded llama.cpp model.

    The model loads on first use (or :meth:`start`); close with :meth:`aclose` or
    ``async with``. A cancelled call (task cancellation: a budget, Ctrl-C, a timeout around
    it) tells llama.cpp to stop that generation, waits up to ``cancel_grace`` seconds for
    the slot to be let go, and returns; llama.cpp acts on the stop at its next token or
    prompt step (``n_batch`` prompt tokens), so nothing keeps generating in the background.

    Args:
        model: ``0.5b`` (default), ``1.5b``, or a GGUF path; None honours ``$SMESH_MODEL_PATH``.
        n_parallel: server slots, i.e. sequences decoded together; default ``$SMESH_SLOTS``
            or 4 (see :func:`embedded_settings`).
        ctx_per_slot: context window of each slot, in tokens.
        n_threads: CPU threads; default ``$SMESH_THREADS`` or every usable core but one.
        name: backend name; default ``local`` or ``local:MODEL``.
        load_timeout: seconds allowed for joining/verifying and loading the model.
        extra: extra fields for every request body (e.g. ``{"seed": 1}``).
        stream_idle_timeout: longest wait for the next streamed piece, seconds.
        n_batch: prompt tokens processed per step; a stop during a long prompt takes
            effect between steps.
        cancel_grace: how long a cancelled call waits for llama.cpp to stop, seconds.
        tool_mode: how a request with tools is put to the model: ``native`` (llama.cpp's
            tool calls with the model's chat template), ``json`` (a reply constrained to
            calls or an answer) or ``auto`` (the one measured more reliable; see
            :mod:`~smesh.backends.local_tools`).
        tool_rounds: rounds of tool calls the model may make after a user message before
            it must answer (``tool_choice="auto"`` then becomes ``none``); None: no limit.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        n_parallel: int | None = None,
        ctx_per_slot: int = 2048,
        n_threads: int | None = None,
        name: str | None = None,
        load_timeout: float = 300.0,
        extra: Mapping[str, Any] | None = None,
        stream_idle_timeout: float = 120.0,
        n_batch: int = 256,
        cancel_grace: float = 1.0,
        tool_mode: ToolMode = "auto",
        tool_rounds: int | None = 1,
    ) -> None:
        self.tool_mode = check_tool_mode(tool_mode)
        self.tool_rounds = None if tool_rounds is None else positive(tool_rounds, "tool_rounds")
        self._path, self._embedded, self.model = resolve_model_path(model)
        settings = embedded_settings(threads=n_threads, slots=n_parallel)
        self.stream_idle_timeout = stream_idle_timeout
        self.name = name or ("local" if model is None else f"local:{model}")
        self.n_parallel = settings.slots
        self.n_threads = settings.threads
        self.ctx_per_slot = positive(ctx_per_slot, "ctx_per_slot")
        self.n_batch = positive(n_batch, "n_batch")
        self.load_timeout = load_timeout
        self.cancel_grace = cancel_grace
        self.extra = dict(extra or {})
        self._server: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._running: set[threading.Event] = set()  # stop flags of in-flight generations

    @property
    def started(self) -> bool:
        """Whether the model is loaded."""
        return self._server is not None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible endpoint (``http://127.0.0.1:PORT/v1``); needs :meth:`start`."""
        return f"{self._root_url()}/v1"

    def _root_url(self) -> str:
        if self._server is None:
            raise BackendUnavailable(f"{self.name}: not started", backend=self.name)
        return str(self._server.listening_address).rstrip("/")

    def model_path(self) -> Path:
        """Join/verify (embedded) or check (explicit path) the GGUF file and return it."""
        if self._path is not None:
            if not self._path.is_file():
                raise ModelNotFound(
                    f"{self.name}: no model file at {self._path}", backend=self.name
                )
            return self._path
        return ensure_model(self._embedded)

    def _load(self) -> Any:
        xllamacpp = _import_xllamacpp()
        path = self.model_path()
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_parallel = self.n_parallel
        params.n_ctx = self.ctx_per_slot * self.n_parallel
        # Small prompt steps give a cancelled call a chance to stop between them; a physical
        # batch no larger than the logical one is what llama.cpp requires.
        params.n_batch = self.n_batch
        params.n_ubatch = min(self.n_batch, params.n_ubatch)
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads
        params.hostnames = ["127.0.0.1"]  # the endpoint must never listen beyond loopback
        params.port = 0
        params.verbosity = -1  # llama.cpp logs would drown the CLI
        try:
            return xllamacpp.Server(params)
        except Exception as exc:  # the binding raises plain RuntimeError/ValueError
            raise ModelNotFound(
                f"{self.name}: cannot load {path}: {exc}", backend=self.name
            ) from None

    async def start(self) -> None:
        """Load the model (idempotent); concurrent callers share one load."""
        if self._closed:
            raise BackendUnavailable(f"{self.name}: closed", backend=self.name)
        async with self._lock:
            if self._server is not None:
                return
            executor = ThreadPoolExecutor(
                max_workers=self.n_parallel + 1, thread_name_prefix="smesh-local"
            )
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.load_timeout):
                    self._server = await loop.run_in_executor(executor, self._load)
            except BaseException:
                executor.shutdown(wait=False, cancel_futures=True)
                raise
            self._executor = executor

    def _launch(
        self, body: Mapping[str, Any], deliver: Callable[[Chunk], None] | None
    ) -> _Generation:
        """Start one streamed generation in a worker thread.

        Chunks go to ``deliver`` as they come, or are collected and returned when it is None.
        """
        assert self._executor is not None
        server = self._server
        request = {**body, "stream": True, "return_progress": True}
        request.setdefault("stream_options", {"include_usage": True})
        stop = threading.Event()

        def generate() -> list[Chunk]:
            chunks: list[Chunk] = []

            def on_chunk(chunk: Chunk) -> bool:
                if deliver is None:
                    chunks.append(chunk)
                else:
                    deliver(chunk)
                return stop.is_set()  # True makes llama.cpp drop this generation

            try:
                server.handle_chat_completions(request, on_chunk)
            except (ValueError, RuntimeError) as exc:
                raise BackendError(
                    f"{self.name}: request rejected: {exc}", backend=self.name
                ) from None
            return chunks

        self._running.add(stop)
        future = self._executor.submit(generate)
        future.add_done_callback(lambda _: self._running.discard(stop))
        return _Generation(future, asyncio.wrap_future(future), stop)

    async def _settle(self, run: _Generation) -> None:
        """Stop a generation that is still running and wait (bounded) for it to end."""
        run.stop.set()
        # Queued work is dropped outright; running work ends at llama.cpp's next step.
        run.future.cancel()
        if not run.waiter.done():
            await asyncio.wait([run.waiter], timeout=self.cancel_grace)
        if run.waiter.done() and not run.waiter.cancelled():
            run.waiter.exception()  # seen here, so a late failure is not logged as lost

    def direct_chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """llama.cpp's own blocking, non-streamed call, with none of this layer around it.

        For measuring what the layer adds (``smesh bench --suite backends``); it cannot be
        cancelled, so use :meth:`complete` or :meth:`raw_chat` for real work. Needs
        :meth:`start`.
        """
        if self._server is None:
            raise BackendUnavailable(f"{self.name}: not started", backend=self.name)
        result: dict[str, Any] = self._server.handle_chat_completions(dict(body))
        return result

    async def raw_chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Send an OpenAI-style body to the server; return the ``chat.completion`` it makes.

        The generation is streamed underneath (so a cancelled call can stop it) and the
        chunks are assembled into the same shape a non-streamed reply has, with ``usage``
        and llama.cpp's ``timings``.
        """
        if self._server is None:
            await self.start()
        run = self._launch(body, None)
        try:
            # shielded: a cancel must reach llama.cpp through the stop flag, and the waiter
            # stays usable for the bounded wait in _settle
            chunks = await asyncio.shield(run.waiter)
        finally:
            await self._settle(run)
        return self._assemble(chunks)

    def _assemble(self, chunks: list[Chunk]) -> dict[str, Any]:
        text: list[str] = []
        finish: str | None = None
        usage: dict[str, Any] = {}
        timings: dict[str, Any] = {}
        calls: dict[int, dict[str, Any]] = {}
        for chunk in chunks:
            self._raise_error_chunk(chunk)
            for choice in chunk.get("choices") or ():
                finish = choice.get("finish_reason") or finish
                delta = choice.get("delta") or {}
                piece = delta.get("content")
                if isinstance(piece, str):
                    text.append(piece)
                add_tool_deltas(calls, delta.get("tool_calls"))
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
        if finish is None and self._closed:
            raise BackendUnavailable(f"{self.name}: closed while generating", backend=self.name)
        if finish is None:
            raise BadResponse(
                f"{self.name}: the generation ended without a reply", backend=self.name
            )
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        return {
            "object": "chat.completion",
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
            "timings": timings,
        }

    def _raise_error_chunk(self, chunk: Chunk) -> None:
        if "error" in chunk:
            err = chunk["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise BackendError(f"{self.name}: {message}", backend=self.name)

    async def complete(self, request: Request) -> Response:
        """Generate a reply with the embedded model (tools as :attr:`tool_mode` says)."""
        request, json_mode = plan_tools(request, self.tool_mode, self.tool_rounds)
        body = json_tool_body(request, self.model) if json_mode else chat_body(request, self.model)
        body.update(self.extra)
        started = time.perf_counter()
        if self._server is None:
            await self.start()
            started = time.perf_counter()  # model loading is not the call's latency
        data = await self.raw_chat(body)
        read = parse_json_reply if json_mode else native_tool_response
        return read(
            data,
            request,
            backend=self.name,
            model=self.model,
            latency_s=time.perf_counter() - started,
        )

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield the reply as it is generated.

        Closing the iterator early (``contextlib.aclosing`` + ``break``, or cancellation)
        tells llama.cpp to stop generating.

        Raises:
            TruncatedResponse: after the last piece, if the reply hit ``max_tokens`` and the
                request does not allow truncation.
            UsageError: the request has tools (a stream carries text only).
        """
        reject_tools_in_stream(request, self.name)
        if self._server is None:
            await self.start()
        body = chat_body(request, self.model)
        body.update(self.extra)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Chunk | None] = asyncio.Queue()

        def deliver(item: Chunk | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop may be gone after a cancel
                loop.call_soon_threadsafe(queue.put_nowait, item)

        run = self._launch(body, deliver)
        run.future.add_done_callback(lambda _: deliver(None))
        finish = "stop"
        pieces: list[str] = []
        try:
            while True:
                async with asyncio.timeout(self.stream_idle_timeout):
                    chunk = await queue.get()
                if chunk is None:
                    break
                self._raise_error_chunk(chunk)
                for choice in chunk.get("choices") or ():
                    finish = choice.get("finish_reason") or finish
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        pieces.append(piece)
                        yield piece
        except TimeoutError:
            raise BackendTimeout(
                f"{self.name}: stream idle for {self.stream_idle_timeout:g} s", backend=self.name
            ) from None
        finally:
            await self._settle(run)
        run.future.result()  # a rejected request raises its BackendError here
        if finish == "length" and not request.allow_truncated:
            raise TruncatedResponse(
                f"{self.name}: streamed reply cut off at max_tokens={request.max_tokens}",
                partial="".join(pieces),
                max_tokens=request.max_tokens,
                backend=self.name,
            )

    async def busy_slots(self) -> int:
        """How many slots are generating or reading a prompt right now (asks ``/slots``)."""
        url = f"{self._root_url()}/slots"

        def ask() -> int:
            with urllib.request.urlopen(url, timeout=5) as answer:
                slots = json.loads(answer.read(1 << 20))
            return sum(1 for slot in slots if slot.get("is_processing"))

        return await asyncio.to_thread(ask)

    async def aclose(self) -> None:
        """Stop in-flight generations, then the server and its threads."""
        self._closed = True
        async with self._lock:
            server, self._server = self._server, None
            executor, self._executor = self._executor, None
        for stop in list(self._running):
            stop.set()
        if executor is not None:
            # Generations end at llama.cpp's next step; the server is then destroyed in a
            # worker thread because its destructor joins llama.cpp's loop.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        if server is not None:
            # Hand over the only reference so the destructor runs in the worker thread.
            holder = [server]
            del server
            await asyncio.to_thread(holder.clear)


def create(
    model: str | None = None,
    *,
    threads: int | None = None,
    slots: int | None = None,
    **options: Any,
) -> LocalBackend:
    """Registry factory for ``local[:MODEL]``.

    ``threads`` and ``slots`` are the user-facing names (``--threads``, ``--slots``) of
    ``n_threads`` and ``n_parallel``; None falls back to ``$SMESH_THREADS``/``$SMESH_SLOTS``.

    Raises:
        UsageError: a value given under both names, or not a whole number >= 1.
    """
    for alias, option, value in (("threads", "n_threads", threads), ("slots", "n_parallel", slots)):
        if value is None:
            continue
        if options.get(option) is not None:
            raise UsageError(f"give {alias}= or {option}=, not both")
        options[option] = value
    return LocalBackend(model, **options)
