#!/usr/bin/env python3
"""Server CPU per request (docs/benchmarks.md, "Server CPU per request"), vault and ceiling.

Runs one `tresor bench ... --baseline --format json` command (the arguments after SERVER_PID)
and reports, next to its JSON:
- the vault server's utime + stime (from /proc/SERVER_PID/stat) over the command, divided by the
  vault's requests;
- the ceiling's: the CPU of the bench process's `tresor-ceiling` threads (its own runtime),
  sampled every 20 ms while they live, divided by the ceiling's requests.

    python3 docs/benchmarks-cpu-per-request.py SERVER_PID target/release/tresor bench encrypt \
        --size 64 -c 16 -d 3s --baseline --rounds 3

Both include the requests `tresor bench` sends before a run (one per kind), and the vault's
figure includes what the server does on its own meanwhile (timers): negligible against tens of
thousands of requests.
"""

import json
import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat_path):
    """utime + stime of a /proc stat file, in seconds (None once it is gone)."""
    try:
        with open(stat_path) as f:
            text = f.read()
    except OSError:
        return None, None
    # The command name is in parentheses and may hold spaces: fields follow the last `)`.
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / TICK


def main():
    server_pid = int(sys.argv[1])
    command = sys.argv[2:]
    if "--format" not in command:
        command += ["--format", "json"]
    _, server_before = cpu_seconds(f"/proc/{server_pid}/stat")
    bench = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    ceiling = {}
    while bench.poll() is None:
        try:
            tids = os.listdir(f"/proc/{bench.pid}/task")
        except OSError:
            tids = []
        for tid in tids:
            name, seconds = cpu_seconds(f"/proc/{bench.pid}/task/{tid}/stat")
            if name is not None and name.startswith("tresor-ceiling"):
                ceiling[tid] = seconds
        time.sleep(0.02)
    out = bench.stdout.read()
    _, server_after = cpu_seconds(f"/proc/{server_pid}/stat")
    report = json.loads(out)
    print(json.dumps({k: v for k, v in report.items() if k != "vault" and k != "ceiling"}))
    for side in ("vault", "ceiling"):
        if report.get(side):
            r = report[side]
            print(f"{side}: {r['requests_per_sec']:.0f} req/s, {r['items_per_sec']:.0f} items/s, errors {r['errors']}, latency {json.dumps(r['latency'])}")
    vault = report["vault"]["requests"]
    bare = (report.get("ceiling") or {}).get("requests", 0)
    server_cpu = server_after - server_before
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"vault: {vault} requests, server CPU {server_cpu:.2f} s, {server_cpu / max(vault, 1) * 1e6:.1f} us per request")
    if bare:
        ceiling_cpu = sum(ceiling.values())
        print(f"ceiling: {bare} requests, CPU {ceiling_cpu:.2f} s, {ceiling_cpu / bare * 1e6:.1f} us per request")
        print(f"vault / ceiling CPU per request: {server_cpu / max(vault, 1) / (ceiling_cpu / bare):.2f}")


if __name__ == "__main__":
    main()
