"""A mesh peer under each flood of issue 10 (found-5): its peak memory, and its service to an
honest peer while the flood lasts.

Usage: python benchmarks/mesh_floods.py [ROUNDS] [--json]

Runs every flood of :mod:`smesh.bench.floods` (real processes, real zenoh on 127.0.0.1) ROUNDS
times (default 1) and prints, per flood: what the attacker sent, the victim's RSS before and
its peak RSS (VmHWM) after, the honest peer's round trips during the flood (p50 / p99 / max,
lost), and the counters that say where the flood went. Targets: peak RSS <= 300 MB, honest
round trip <= 50 ms (checked here on the p99 and the max of each round).
"""

from __future__ import annotations

import json
import sys

from smesh.bench.floods import FLOODS, FloodResult, run_flood

RSS_TARGET_MB = 300.0
RTT_TARGET_MS = 50.0

#: the counters that show where each flood went
WHERE = {
    "pending": ("dropped_pending_rate", "dropped_pending", "dropped_unsigned"),
    "hellos": ("dropped_hello_rate", "evicted_peer_keys", "peer_keys"),
    "quota": ("dropped_quota_ops", "applied_ops"),
    "tokens": ("dropped_silent_peer", "dropped_peer_tokens"),
    "sync": ("sync_answers", "sync_busy", "sync_answered_bytes"),
}


def _row(result: FloodResult) -> dict[str, object]:
    rtt = result.rtt_summary()
    counters = result.victim["counters"]
    worst = max(v for v in (rtt["p99"], rtt["max"]) if v is not None) if rtt["max"] else None
    return {
        "flood": result.flood,
        "sent": result.sent,
        "rss_before_mb": result.rss_before_mb,
        "peak_rss_mb": result.peak_rss_mb,
        "rtt_ms": rtt,
        "pings": len(result.rtt_ms),
        "peers_listed_max": result.peers_seen,
        "peer_keys": result.victim["keys"],
        "victim_batch_macs_max": result.attacker.get("max_macs"),
        "victim_batch_bytes_max": result.attacker.get("max_bytes"),
        "sync_reply_bytes": result.attacker.get("reply_bytes"),
        "counters": {name: counters.get(name, 0) for name in WHERE[result.flood]},
        "meets_rss": result.peak_rss_mb <= RSS_TARGET_MB,
        "meets_rtt": rtt["lost"] == 0 and worst is not None and worst <= RTT_TARGET_MS,
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--json"]
    rounds = int(args[0]) if args else 1
    rows = []
    for _ in range(rounds):
        for flood in FLOODS:
            settle = 4.0 if flood == "tokens" else 0.5  # past the tokens' TTL
            row = _row(run_flood(flood, settle_s=settle))
            rows.append(row)
            if "--json" not in sys.argv:
                rtt = row["rtt_ms"]
                assert isinstance(rtt, dict)
                print(
                    f"{row['flood']:8} sent {row['sent']:>6} | RSS {row['rss_before_mb']:6.1f} -> "
                    f"peak {row['peak_rss_mb']:6.1f} MB | honest RTT p50 {rtt['p50']} p99 "
                    f"{rtt['p99']} max {rtt['max']} ms, lost {rtt['lost']}/{row['pings']} | "
                    f"{row['counters']} | rss ok {row['meets_rss']}, rtt ok {row['meets_rtt']}",
                    flush=True,
                )
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
