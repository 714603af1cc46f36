"""``local``: the embedded model, run in-process by xllamacpp.

One :class:`LocalBackend` owns one llama.cpp server with ``n_parallel`` slots; concurrent
``complete`` calls run in worker threads and the server batches them (continuous
batching), which is where the parallel speed-up comes from. The same server also listens
on an OpenAI-compatible endpoint on 127.0.0.1 (:attr:`LocalBackend.base_url`).

Model choice: ``local`` (Qwen2.5-Coder-0.5B, the default), ``local:1.5b`` (optional extra),
``local:/path/to/model.gguf``, or ``$SMESH_MODEL_PATH`` for a bare ``local``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from smesh.backends.base import BackendBase, Request, Response, TruncatedResponse
from smesh.backends.model import MODELS, ensure_model, spec_for
from smesh.backends.openai import chat_body, parse_chat_completion
from smesh.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    ModelNotFound,
)

__all__ = ["LocalBackend", "create", "resolve_model_path"]

DEFAULT_MODEL = "0.5b"


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
    ``async with``. Cancelling a call stops waiting for it, but llama.cpp finishes that
    generation in its worker thread (bounded by ``max_tokens``).

    Args:
        model: ``0.5b`` (default), ``1.5b``, or a GGUF path; None honours ``$SMESH_MODEL_PATH``.
        n_parallel: server slots, i.e. sequences decoded together.
        ctx_per_slot: context window of each slot, in tokens.
        n_threads: CPU threads; default all cores.
        name: backend name; default ``local`` or ``local:MODEL``.
        load_timeout: seconds allowed for joining/verifying and loading the model.
        extra: extra fields for every request body (e.g. ``{"seed": 1}``).
        stream_idle_timeout: longest wait for the next streamed piece, seconds.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        n_parallel: int = 4,
        ctx_per_slot: int = 2048,
        n_threads: int | None = None,
        name: str | None = None,
        load_timeout: float = 300.0,
        extra: Mapping[str, Any] | None = None,
        stream_idle_timeout: float = 120.0,
    ) -> None:
        self._path, self._embedded, self.model = resolve_model_path(model)
        self.stream_idle_timeout = stream_idle_timeout
        self.name = name or ("local" if model is None else f"local:{model}")
        self.n_parallel = max(1, n_parallel)
        self.ctx_per_slot = ctx_per_slot
        self.n_threads = n_threads or os.cpu_count() or 1
        self.load_timeout = load_timeout
        self.extra = dict(extra or {})
        self._server: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def started(self) -> bool:
        """Whether the model is loaded."""
        return self._server is not None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible endpoint (``http://127.0.0.1:PORT/v1``); needs :meth:`start`."""
        if self._server is None:
            raise BackendUnavailable(f"{self.name}: not started", backend=self.name)
        return f"{str(self._server.listening_address).rstrip('/')}/v1"

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

    async def raw_chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Send an OpenAI-style body straight to the server; return its JSON reply."""
        if self._server is None:
            await self.start()
        assert self._executor is not None
        server = self._server
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(
                self._executor, server.handle_chat_completions, dict(body)
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"{self.name}: request rejected: {exc}", backend=self.name) from None
        if not isinstance(data, dict):
            raise BadResponse(
                f"{self.name}: unexpected reply type {type(data).__name__}", backend=self.name
            )
        if "error" in data or "choices" not in data:
            err = data.get("error", data)
            message = err.get("message", err) if isinstance(err, dict) else err
            raise BackendError(f"{self.name}: {message}", backend=self.name)
        return data

    async def complete(self, request: Request) -> Response:
        """Generate a reply with the embedded model."""
        body = chat_body(request, self.model)
        body.update(self.extra)
        started = time.perf_counter()
        if self._server is None:
            await self.start()
            started = time.perf_counter()  # model loading is not the call's latency
        data = await self.raw_chat(body)
        return parse_chat_completion(
            {**data, "model": self.model},
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
        """
        if self._server is None:
            await self.start()
        assert self._executor is not None
        server = self._server
        body = chat_body(request, self.model)
        body.update(self.extra)
        body["stream"] = True
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        stop = threading.Event()

        def deliver(item: dict[str, Any] | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop may be gone after a cancel
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def on_chunk(chunk: dict[str, Any]) -> bool:
            deliver(chunk)
            return stop.is_set()  # True asks llama.cpp to stop this generation

        def generate() -> None:
            try:
                server.handle_chat_completions(body, on_chunk)
            finally:
                deliver(None)

        worker = loop.run_in_executor(self._executor, generate)
        finish = "stop"
        pieces: list[str] = []
        try:
            while True:
                async with asyncio.timeout(self.stream_idle_timeout):
                    chunk = await queue.get()
                if chunk is None:
                    break
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
            stop.set()
            try:
                await asyncio.shield(worker)
            except (ValueError, RuntimeError) as exc:
                raise BackendError(
                    f"{self.name}: request rejected: {exc}", backend=self.name
                ) from None
        if finish == "length" and not request.allow_truncated:
            raise TruncatedResponse(
                f"{self.name}: streamed reply cut off at max_tokens={request.max_tokens}",
                partial="".join(pieces),
                max_tokens=request.max_tokens,
                backend=self.name,
            )

    async def aclose(self) -> None:
        """Stop the server and its threads (waits for in-flight generations)."""
        self._closed = True
        async with self._lock:
            server, self._server = self._server, None
            executor, self._executor = self._executor, None
        if executor is not None:
            # In-flight generations finish first; the server is then destroyed in a worker
            # thread because its destructor joins llama.cpp's loop.
            await asyncio.to_thread(executor.shutdown, wait=True)
        if server is not None:
            # Hand over the only reference so the destructor runs in the worker thread.
            holder = [server]
            del server
            await asyncio.to_thread(holder.clear)


def create(model: str | None = None, **options: Any) -> LocalBackend:
    """Registry factory for ``local[:MODEL]``."""
    return LocalBackend(model, **options)
