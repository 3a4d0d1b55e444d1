#!/usr/bin/env bash
# Twenty-four nodes on separate hosts (examples/net24.toml; needs root): runs the devnet and
# checks its network figures: from the second epoch on, at least 95% of the queries answered
# each epoch; no row refused; no node over 64 MiB resident; each restarted node dialled again
# by 90% of its peers within two epochs; the run itself checks that the chain verifies and
# that no node ended on its own. DEEPNODE names the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DEEPNODE:-}" ]; then
    cargo build --release -q -p deepnode-cli
    DEEPNODE=target/release/deepnode
fi
out="${1:-target/net24}"
"$DEEPNODE" devnet examples/net24.toml --out "$out" >/dev/null
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
net = json.load(open(f"{out}/network.json"))
epochs = net["epochs"]
block_s = 10 * 0.5  # tempo * block_ms of examples/net24.toml, seconds per epoch
bad = []
prev = {}
for e in epochs:
    answered = asked = refused = 0
    for n in e["nodes"]:
        if not n["alive"]:
            continue
        m, p = n["metrics"], prev.get(n["name"], {})
        d = lambda k: m[k] - p.get(k, 0) if m[k] >= p.get(k, 0) else m[k]
        answered += d("answers")
        asked += d("answers") + d("failed") + d("skipped")
        refused += d("rows_refused")
        rss = (n["rss_kib"] or 0) / 1024
        if rss > 64:
            bad.append(f"epoch {e['epoch']}: {n['name']} holds {rss:.1f} MiB")
    share = answered / asked if asked else 1.0
    if e["epoch"] >= 2 and share < 0.95:
        bad.append(f"epoch {e['epoch']}: {100 * share:.1f}% of {asked} queries answered")
    if refused:
        bad.append(f"epoch {e['epoch']}: {refused} rows refused")
    prev = {n["name"]: n["metrics"] for n in e["nodes"]}
for r in net["restarts"]:
    t90 = r["dialled_again"][1]
    if t90 is None or t90 > 2 * block_s:
        bad.append(f"{r['name']}: 90% of its peers dialled it again after {t90} s")
print(f"net24: {len(epochs)} epochs; " + ("ok" if not bad else "; ".join(bad)))
sys.exit(1 if bad else 0)
PY
