"""`make bench-envoy`: what each filter costs inside a real Envoy.

Every setup (see setups.py) gets its own Envoy with one worker
(`--concurrency 1`), pinned to the first core; wrk and the upstream Envoy
run on the second. Rounds go through the setups in a new shuffled order
each time, so drift on a shared machine spreads over all of them. A setup's
cost is the Envoy process's CPU time (utime+stime from /proc/<pid>/stat)
over the requests it served (its own downstream_rq_completed counter); its
added cost is, per round, its figure minus its baseline's, and the table
shows the median and the spread (lowest..highest) of those differences.
Any response that is not 2xx makes the setup's run invalid. This prints
figures; it asserts nothing about time.

With `--against DIR` (`BENCH_AGAINST`), every setup that loads a module
also runs with DIR's modules, as `<name>@against`, in the same shuffled
rounds over the same baselines: two builds compared side by side, so the
machine's drift between runs does not enter the comparison.
"""

import argparse
import json
import os
import random
import re
import shutil
import socket as sock
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import setups as cfg

CLK_TCK = os.sysconf("SC_CLK_TCK")


_handed_out = set()


def free_port():
    """A port free now and not handed out before: the OS may offer a port
    again once the probing socket is closed, and a dozen Envoys start at once."""
    while True:
        with sock.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def pinned(core):
    return ["taskset", "-c", str(core)] if core is not None else []


class Envoy:
    """One Envoy process of ours; stopped by its own pid."""

    def __init__(self, binary, workdir, name, make_bootstrap, core):
        self.name = name
        self.admin, self.port = free_port(), free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "envoy.json"
        config.write_text(json.dumps(make_bootstrap(self.admin, self.port)))
        self.log = self.dir / "envoy.log"
        env = dict(os.environ, **{cfg.HASH_KEY_ENV: "bench-hash-key-0123456789abcdef"})
        self.proc = subprocess.Popen(
            pinned(core) + [str(binary), "-c", str(config), "--concurrency", "1", "--use-dynamic-base-id",
                            "--log-level", "warn", "--log-path", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: Envoy exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: Envoy not ready in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines=15):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self):
        # Fields after the command name (which may hold spaces) start at state.
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mb(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def counters(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/stats?filter=^http\\.ingress\\.downstream_rq_", timeout=5) as r:
            text = r.read().decode()
        values = dict(re.findall(r"^(\S+): (\d+)$", text, re.M))
        return int(values.get("http.ingress.downstream_rq_completed", 0)), int(values.get("http.ingress.downstream_rq_2xx", 0))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wrk_script(path, request):
    """A wrk Lua script that sends the setup's request."""
    lines = [f'wrk.method = "{request["method"]}"', f'wrk.path = {json.dumps(request["path"])}']
    for name, value in request.get("headers", {}).items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    if "body" in request:
        body = path.with_suffix(".body")
        body.write_bytes(request["body"])
        lines.append(f'local f = io.open({json.dumps(str(body))}, "rb"); wrk.body = f:read("*a"); f:close()')
    path.write_text("\n".join(lines) + "\n")


def check_once(envoy, request):
    """One request before any load: its status, so a setup that cannot do
    its job is reported before it is measured."""
    headers = dict(request.get("headers", {}))
    host = headers.pop("host", None)
    req = urllib.request.Request(f"http://127.0.0.1:{envoy.port}{request['path']}", data=request.get("body"),
                                 method=request["method"], headers=headers)
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def run_wrk(envoy, script, seconds, connections, core):
    out = subprocess.run(pinned(core) + ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                                         f"http://127.0.0.1:{envoy.port}"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()}")
    return out.stdout


def measure(envoy, script, seconds, connections, core):
    """CPU µs per request served, requests, and non-2xx responses of one burst."""
    done0, ok0 = envoy.counters()
    cpu0 = envoy.cpu_seconds()
    run_wrk(envoy, script, seconds, connections, core)
    cpu1 = envoy.cpu_seconds()
    done1, ok1 = envoy.counters()
    requests = done1 - done0
    return ((cpu1 - cpu0) * 1e6 / requests if requests else float("nan")), requests, requests - (ok1 - ok0)


def fmt(x, digits=1):
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def load_modules(wasm_dir):
    modules = {p.stem: p.resolve() for p in wasm_dir.glob("*.wasm")}
    for needed in ("probe_fixture", "header_router", "principal_authz", "retry_hints", "mirror_sanitizer"):
        if needed not in modules:
            sys.exit(f"no {needed}.wasm in {wasm_dir}: run `make build`")
    return modules


def all_of(modules):
    return cfg.setups(modules) + cfg.throughput(modules)


def loads_module(setup):
    return any("envoy.filters.http.wasm" in json.dumps(f) for f in list(setup.get("filters", ())) + list(setup.get("upstream_filters") or ()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envoy", required=True)
    ap.add_argument("--wasm-dir", required=True)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 7)))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 3)))
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""), help="comma-separated setup names (their baselines are added)")
    ap.add_argument("--against", default=os.environ.get("BENCH_AGAINST", ""), help="a second directory of modules, run side by side")
    args = ap.parse_args()

    all_setups = all_of(load_modules(Path(args.wasm_dir)))
    if args.against:
        twins = {s["name"]: s for s in all_of(load_modules(Path(args.against)))}
        all_setups += [dict(twins[s["name"]], name=s["name"] + "@against", job=s["job"] + f" ({args.against})")
                       for s in all_setups if loads_module(s)]
    if args.only:
        wanted = set(args.only.split(","))
        wanted |= {n + "@against" for n in wanted}
        wanted |= {s["base"] for s in all_setups if s["name"] in wanted and s["base"]}
        all_setups = [s for s in all_setups if s["name"] in wanted]

    cores = os.cpu_count() or 1
    envoy_core, load_core = (0, 1) if cores >= 2 else (None, None)
    print(f"# bench-envoy {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cores} cores, "
          f"load average {os.getloadavg()[0]:.2f}; Envoy worker on core {envoy_core}, wrk and the upstream on core {load_core}")
    print(f"# {len(all_setups)} setups, {args.rounds} shuffled rounds of {args.seconds}s each, wrk -t1 -c{args.connections}")

    workdir = Path(tempfile.mkdtemp(prefix="bench-envoy-"))
    upstream_port = free_port()
    started = []
    try:
        upstream = Envoy(args.envoy, workdir, "upstream", lambda a, _p: cfg.upstream_bootstrap(a, upstream_port), load_core)
        started.append(upstream)
        for s in all_setups:
            make = lambda a, p, s=s: cfg.bootstrap(a, p, upstream_port, s["routes"], s.get("filters", ()), s.get("upstream_filters"))
            s["envoy"] = Envoy(args.envoy, workdir, s["name"], make, envoy_core)
            started.append(s["envoy"])
            s["script"] = workdir / s["name"] / "request.lua"
            wrk_script(s["script"], s["request"])
        upstream.wait_ready()
        for s in list(all_setups):
            try:
                s["envoy"].wait_ready()
                status = check_once(s["envoy"], s["request"])
            except RuntimeError as e:
                print(f"! {s['name']}: {e}", file=sys.stderr)
                status = None
            if status is None or not 200 <= status < 300:
                print(f"! {s['name']}: first request answered {status}; left out\n{s['envoy'].log_tail()}", file=sys.stderr)
                all_setups.remove(s)
                continue
            run_wrk(s["envoy"], s["script"], 1, args.connections, load_core)  # warm-up
            s["rounds"], s["requests"], s["bad"] = [], 0, 0
        for r in range(args.rounds):
            order = list(all_setups)
            random.shuffle(order)
            for s in order:
                us, requests, bad = measure(s["envoy"], s["script"], args.seconds, args.connections, load_core)
                s["rounds"].append(us)
                s["requests"] += requests
                s["bad"] += bad
            print(f"# round {r + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for s in all_setups:
            s["rss"] = s["envoy"].rss_mb()
        report(all_setups, args)
    finally:
        for e in started:
            e.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(all_setups, args):
    by_name = {s["name"]: s for s in all_setups}
    print()
    print("| setup | job | CPU µs/request | added µs (median) | spread of added (min..max) | requests | RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in all_setups:
        if s.get("body_size"):
            continue
        cpu = statistics.median(s["rounds"])
        base = by_name.get(s["base"]) if s["base"] else None
        added, spread = None, ""
        if s["bad"]:
            added_text, spread = f"INVALID: {s['bad']} non-2xx", ""
        elif base and not base["bad"]:
            diffs = [a - b for a, b in zip(s["rounds"], base["rounds"])]
            valid = [d for d in diffs if d == d]
            added = statistics.median(valid) if valid else float("nan")
            added_text = f"{added:+.1f} over {base['name']}" if valid else "no valid round"
            diffs = valid or diffs
            spread = f"{fmt(min(diffs))}..{fmt(max(diffs))}"
        else:
            added_text = "(baseline)" if not s["base"] else "baseline invalid"
        print(f"| {s['name']} | {s['job']} | {fmt(cpu)} | {added_text} | {spread} | {s['requests']} | {fmt(s['rss'], 0)} |")
    for s in all_setups:
        if not s.get("body_size"):
            continue
        base = by_name.get(s["base"])
        if not base or s["bad"] or base["bad"]:
            print(f"\nsanitizer throughput: invalid run ({s['bad']} non-2xx)")
            continue
        diffs = [a - b for a, b in zip(s["rounds"], base["rounds"])]
        # bytes per µs of added CPU is MB/s of one core.
        rates = sorted(s["body_size"] / d for d in diffs if d > 0)
        if rates:
            print(f"\n{s['name']}: mirror-sanitizer on {s['body_size'] // 1024} KiB JSON shadow bodies: {fmt(statistics.median(rates))} MB/s per core "
                  f"(rounds {fmt(rates[0])}..{fmt(rates[-1])}; added {fmt(statistics.median(diffs), 0)} µs per request over {base['name']}, "
                  f"{s['requests']} requests)")
    print("\nRSS is the Envoy process's VmRSS after the rounds (one worker).")


if __name__ == "__main__":
    main()
