"""Zenoh underneath the mesh: one peer-mode session, its key expressions and its config.

Each node declares, under ``smesh/<mesh>/``:

- ``ops/<node>``: a publisher of its signed batches (reliable, blocking on congestion, so a
  fast emitter is slowed down rather than losing operations); every node subscribes to
  ``ops/*`` from remote sessions only.
- ``sync/<node>``: a queryable that answers with every batch its replica holds; a late
  joiner (or a node that sees a peer come back) queries ``sync/*`` or ``sync/<peer>``.
- ``peers/<node>``: a liveliness token. Zenoh withdraws it when the session ends or its
  transport dies, so every peer learns of a departure within the transport's lease.

Peers find each other through the endpoints given and zenoh's gossip; multicast scouting
is off unless asked for, so that tests on one machine never meet each other. With TLS, every
link is mutually authenticated against the mesh CA (see :mod:`smesh.mesh.pki`), and an
optional allow-list of certificate common names becomes zenoh access control.

Zenoh runs its callbacks on its own threads; this module only forwards raw bytes and events
to the callbacks it was given (see :class:`smesh.mesh.field.MeshField` for the bridging).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import zenoh

from smesh.errors import TransportError, UsageError
from smesh.mesh.limits import Limits
from smesh.mesh.pki import NodeCredentials
from smesh.mesh.wire import MAX_MESSAGE_BYTES

__all__ = ["MeshConfig", "PeerLink", "Transport", "query_cursor", "zenoh_config"]

_MESH_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOG_ONCE = threading.Lock()
_LOG_READY: list[bool] = []  # non-empty once zenoh's logging is set up


class MeshConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How a node joins a mesh.

    Attributes:
        mesh: the mesh name; nodes of different meshes ignore each other.
        listen: zenoh endpoints to accept peers on, e.g. ``tcp/127.0.0.1:7447`` (port 0: any
            free port). A peer that listens nowhere cannot be reached by the peers it
            learns of by gossip; zenoh's default is every interface on a free port.
        connect: endpoints of peers to connect to.
        tls: this node's TLS credentials; with them, use ``tls/`` endpoints.
        allow: certificate common names allowed to exchange data (empty: any certificate
            the CA signed). Needs ``tls``.
        multicast: discover peers by multicast scouting on the LAN.
        sync_timeout_s: how long a late joiner waits for replicas to answer.
        max_batch: most operations per published batch.
        lease_kinds: signal kinds that lapse when the node that signed them leaves.
        max_skew_s: how far in the future a remote timestamp may lie (clock skew).
        gc_grace_s: how long a replica keeps a dead signal's operations (late messages).
        sign_interval_s: at most one signature note per this interval (see
            :mod:`smesh.mesh.channel`).
        sign_delay_s: a batch sent with MACs is signed no sooner than this after it.
        max_message_bytes: the largest inbound message accepted.
        limits: the bounds on what peers may make this node hold or do (see
            :class:`~smesh.mesh.limits.Limits`).
    """

    mesh: str = "smesh"
    listen: tuple[str, ...] = ()
    connect: tuple[str, ...] = ()
    tls: NodeCredentials | None = None
    allow: tuple[str, ...] = ()
    multicast: bool = False
    sync_timeout_s: float = 2.0
    max_batch: int = 1024
    lease_kinds: frozenset[str] = frozenset({"claim"})
    max_skew_s: float = 30.0
    gc_grace_s: float = 60.0
    sign_interval_s: float = 0.02
    sign_delay_s: float = 0.005
    max_message_bytes: int = MAX_MESSAGE_BYTES
    limits: Limits = msgspec.field(default_factory=Limits)

    def __post_init__(self) -> None:
        if not _MESH_NAME.match(self.mesh):
            raise UsageError(f"mesh name must be 1-64 letters, digits, '_' or '-': {self.mesh!r}")
        if self.allow and self.tls is None:
            raise UsageError("an allow-list of certificate names needs TLS credentials")
        if self.max_batch < 1 or self.sync_timeout_s <= 0 or self.max_skew_s < 0:
            raise UsageError("max_batch must be >= 1, sync_timeout_s > 0, max_skew_s >= 0")
        for endpoint in (*self.listen, *self.connect):
            scheme = endpoint.split("/", 1)[0]
            if self.tls is not None and scheme != "tls":
                raise UsageError(f"with TLS credentials every endpoint must be tls/: {endpoint}")


class PeerLink(msgspec.Struct, frozen=True, kw_only=True):
    """One live zenoh link of this node."""

    zid: str
    src: str
    dst: str
    auth: str | None = None  # the peer certificate's common name over TLS


_ACL_MESSAGES = [
    "put",
    "delete",
    "declare_subscriber",
    "query",
    "reply",
    "declare_queryable",
    "liveliness_token",
    "declare_liveliness_subscriber",
    "liveliness_query",
]


def zenoh_config(config: MeshConfig) -> zenoh.Config:
    """The zenoh session config for ``config`` (peer mode)."""
    zc = zenoh.Config()
    zc.insert_json5("mode", '"peer"')
    if config.listen:  # otherwise zenoh's default: any interface, a free port
        zc.insert_json5("listen/endpoints", json.dumps(list(config.listen)))
    zc.insert_json5("connect/endpoints", json.dumps(list(config.connect)))
    zc.insert_json5("scouting/multicast/enabled", json.dumps(config.multicast))
    # zenoh reassembles messages up to this size; twice our own limit, so that an oversized
    # message still reaches us and is counted rather than vanishing inside zenoh
    zc.insert_json5("transport/link/rx/max_message_size", str(2 * config.max_message_bytes))
    if config.tls is not None:
        tls = config.tls
        zc.insert_json5(
            "transport/link/tls",
            json.dumps(
                {
                    "root_ca_certificate": str(tls.ca),
                    "listen_private_key": str(tls.key),
                    "listen_certificate": str(tls.cert),
                    "connect_private_key": str(tls.key),
                    "connect_certificate": str(tls.cert),
                    "enable_mtls": True,
                    # peers are named by certificate, not by host: the CA is the check
                    "verify_name_on_connect": False,
                }
            ),
        )
    if config.allow:
        zc.insert_json5(
            "access_control",
            json.dumps(
                {
                    "enabled": True,
                    "default_permission": "deny",
                    "rules": [
                        {
                            "id": "mesh",
                            "permission": "allow",
                            "flows": ["ingress", "egress"],
                            "messages": _ACL_MESSAGES,
                            "key_exprs": ["**"],
                        }
                    ],
                    "subjects": [{"id": "members", "cert_common_names": list(config.allow)}],
                    "policies": [{"rules": ["mesh"], "subjects": ["members"]}],
                }
            ),
        )
    return zc


def query_cursor(query: Any) -> int:
    """The cursor a sync query asks from (``?after=N``; 0: from the start)."""
    try:
        value = query.parameters.get("after")
        return max(0, int(value)) if value else 0
    except (ValueError, TypeError, AttributeError):
        return 0


def _init_logging() -> None:
    with _LOG_ONCE:
        if not _LOG_READY:
            zenoh.init_log_from_env_or("error")
            _LOG_READY.append(True)


class Transport:
    """A node's zenoh session with its publisher, subscriber, queryable and token.

    Args:
        config: how to join.
        node_id: this node's id (names its keys).
        on_batch: called with the bytes of every remote batch (on a zenoh thread).
        on_query: called with every sync query addressed to this node (on a zenoh thread);
            it must answer through :meth:`reply` and return.
        on_peer: called with ``(node_id, alive)`` on every liveliness change.
    """

    def __init__(
        self,
        config: MeshConfig,
        node_id: str,
        *,
        on_batch: Callable[[bytes], None],
        on_query: Callable[[Any], None],
        on_peer: Callable[[str, bool], None],
    ) -> None:
        self.config = config
        self.node_id = node_id
        self._root = f"smesh/{config.mesh}"
        self._on_batch = on_batch
        self._on_query = on_query
        self._on_peer = on_peer
        self._session: Any = None
        self._publisher: Any = None
        self._tx_lock = threading.Lock()
        self._entities: list[Any] = []

    @property
    def is_open(self) -> bool:
        """Whether the session is open."""
        return self._session is not None

    def open(self) -> None:
        """Open the session and declare everything but the liveliness token.

        Raises:
            TransportError: zenoh refused the config or could not listen.
        """
        _init_logging()
        try:
            session = zenoh.open(zenoh_config(self.config))
        except zenoh.ZError as exc:
            raise TransportError(
                f"cannot open the mesh session: {exc}", node=self.node_id
            ) from None
        self._session = session
        root = self._root
        self._publisher = session.declare_publisher(
            f"{root}/ops/{self.node_id}",
            congestion_control=zenoh.CongestionControl.BLOCK,
            express=True,  # send at once; we batch ourselves
        )

        def on_sample(sample: Any) -> None:
            self._on_batch(sample.payload.to_bytes())

        def on_liveliness(sample: Any) -> None:
            node = str(sample.key_expr).rsplit("/", 1)[-1]
            if node != self.node_id:
                self._on_peer(node, sample.kind == zenoh.SampleKind.PUT)

        self._entities = [
            session.declare_subscriber(
                f"{root}/ops/*", on_sample, allowed_origin=zenoh.Locality.REMOTE
            ),
            session.declare_queryable(f"{root}/sync/{self.node_id}", self._on_query),
            session.liveliness().declare_subscriber(f"{root}/peers/*", on_liveliness, history=True),
        ]

    def announce(self) -> None:
        """Declare this node's liveliness token (after it has caught up)."""
        self._entities.append(
            self._session.liveliness().declare_token(f"{self._root}/peers/{self.node_id}")
        )

    def publish(self, data: bytes) -> None:
        """Publish one message (blocks while zenoh's queue is full).

        A zenoh publisher must not be used from two threads at once (zenoh-python raises
        "Already borrowed"), and zenoh threads publish too (answers, hellos): one lock.
        """
        with self._tx_lock:
            publisher = self._publisher
            if publisher is not None:
                publisher.put(data)

    def reply(self, query: Any, data: bytes, chunk: int) -> None:
        """Answer a sync query with one chunk."""
        query.reply(f"{self._root}/sync/{self.node_id}/{chunk}", data)

    def fetch(
        self, peer: str = "*", *, after: int = 0, timeout_s: float | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Ask replicas (all, or one peer's) for their batches kept after cursor ``after``;
        yield ``(replica's node id, bytes)`` for each reply.

        Blocks until every replica answered or the timeout passed.
        """
        session = self._session
        if session is None:
            return
        selector = f"{self._root}/sync/{peer}/**"
        if after:
            selector += f"?after={after}"
        try:
            replies = session.get(
                selector,
                target=zenoh.QueryTarget.ALL,
                consolidation=zenoh.QueryConsolidation(zenoh.ConsolidationMode.NONE),
                timeout=timeout_s if timeout_s is not None else self.config.sync_timeout_s,
            )
            for reply in replies:
                sample = reply.ok
                if sample is not None:
                    parts = str(sample.key_expr).split("/")
                    yield (parts[3] if len(parts) > 4 else ""), sample.payload.to_bytes()
        except zenoh.ZError as exc:  # e.g. the session closed under us
            raise TransportError(f"sync query failed: {exc}", node=self.node_id) from None

    def links(self) -> list[PeerLink]:
        """This node's live links (with the peer certificate's name over TLS)."""
        session = self._session
        if session is None:
            return []
        return [
            PeerLink(zid=str(link.zid), src=link.src, dst=link.dst, auth=link.auth_identifier)
            for link in session.info.links()
        ]

    def close(self) -> None:
        """Undeclare everything and close the session; safe to call twice."""
        session, self._session = self._session, None
        if session is None:
            return
        entities, self._entities = self._entities, []
        for entity in reversed(entities):
            with contextlib.suppress(zenoh.ZError):  # already gone with its session
                entity.undeclare()
        with self._tx_lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(zenoh.ZError):
                publisher.undeclare()
        session.close()
