#!/usr/bin/env python3
"""CPU time per message of each process a benchmark involves, read from /proc.

    bench/cpu_per_message.py MESSAGES COMMAND [ARGS...]

Runs COMMAND (a benchmark that moves MESSAGES messages in all, e.g. js/bench/browser.mjs
100000 URL, which runs three rounds: MESSAGES = 300000) and samples, every 0.2 s, the user +
system CPU time of RabbitMQ (beam.smp), kombu-gateway, Chromium's processes by type (renderer,
network service, GPU, browser, others) and Node. Prints the command's last output line, then
each group's CPU microseconds per message. Processes that start and end during the run count
up to their last sample. Linux only.
"""
import os
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def group(cmd):
    if "beam.smp" in cmd:
        return "rabbitmq"
    if "kombu-gateway" in cmd:
        return "gateway"
    if "chromium" in cmd:
        if "--type=renderer" in cmd:
            return "chromium-renderer"
        if "network.mojom" in cmd:
            return "chromium-network"
        if "--type=gpu" in cmd:
            return "chromium-gpu"
        return "chromium-other" if "--type=" in cmd else "chromium-browser"
    if cmd.startswith("node"):
        return "node"
    return None


def sample():
    """CPU seconds by (group, pid)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        g = group(cmd)
        if g:
            out[(g, pid)] = (int(fields[11]) + int(fields[12])) / HZ
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    messages = float(sys.argv[1])
    first = sample()
    last = dict(first)
    started = time.time()
    proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, text=True)
    while proc.poll() is None:
        time.sleep(0.2)
        last.update(sample())
    out = proc.stdout.read()
    wall = time.time() - started
    used = {}
    for key, t in last.items():
        used[key[0]] = used.get(key[0], 0.0) + t - first.get(key, 0.0)
    lines = out.strip().splitlines()
    print(lines[-1] if lines else "(no output)")
    per = sorted(used.items(), key=lambda kv: -kv[1])
    print("wall %.1f s; CPU per message: %s; total %.1f us" % (
        wall, ", ".join("%s %.1f us" % (g, t * 1e6 / messages) for g, t in per), sum(used.values()) * 1e6 / messages))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
