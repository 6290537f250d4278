"""Writes the harness scenario of `make bench-envoy`'s sanitizer throughput
setup: the same 1 MiB JSON records, the same configuration, in 16 KiB data
callbacks as Envoy delivers them, so the harness's instruction count per
byte stands beside the MB/s measured in Envoy.

usage: harness_scenario.py OUT_DIR MODULE  (writes OUT_DIR/scenario.yaml)
"""

import json
import sys
from pathlib import Path

import setups as cfg

CHUNK = 16 * 1024


def main():
    out, module = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _, _, size = cfg.throughput_setups()
    body = cfg.body_of(size)
    chunks = []
    for i in range(0, len(body), CHUNK):
        name = f"chunk-{i // CHUNK:03}.bin"
        (out / name).write_bytes(body[i:i + CHUNK])
        chunks.append({"file": name})
    scenario = {
        "wasm": str(module),
        "plugin": {"rootId": "mirror-sanitizer", "env": {cfg.HASH_KEY_ENV: "bench-hash-key-0123456789"}, "config": cfg.SANITIZER_CONFIG},
        "requests": [{"name": "the Envoy benchmark's 1 MiB shadow POST", "request": {
            "method": "POST", "path": "/users/u-1001/orders",
            "headers": {"host": "my-service-shadow:8080", "content-type": "application/json"}, "chunks": chunks}}],
    }
    # JSON is YAML; the harness reads either.
    (out / "scenario.yaml").write_text(json.dumps(scenario, indent=1))
    print(len(body))


if __name__ == "__main__":
    main()
