r"""Count the Redis commands of one window of a MONITOR log, for the `cost` section of
scripts/bench.sh.

    python3 cost_count.py MONITOR_LOG LABEL OFFSET [PROXY_ADDRS]

The window is the lines strictly between `"ECHO" "edgecount-cost:LABEL:start"` and
`"ECHO" "edgecount-cost:LABEL:end"` (the markers bench.sh sends before and after the operations,
each from a redis-cli of its own), read from byte OFFSET on (the log's size before the start
marker was sent, so a long log is not read again for every window). Each MONITOR line is one
command Redis ran: `<time> [<db> <client>] "NAME" "arg" ...`. Lines whose client is `lua` are the calls a script made
inside itself: Upstash does not bill those (the EVALSHA is the one command), so they are left out
of `commands` and reported as `lua` alone.

PROXY_ADDRS (optional): a file of `ip:port` lines, the sockets the proxy holds to this Redis;
`foreign` then counts the window's commands from any other client (should be 0: nothing but the
proxy talks to this Redis).

LABEL `@setup` (with OFFSET 0): every command before the first marker instead (what the proxy
sent on its own before the first window: its connections' set-up).

Prints one tab-separated line: commands, lua, foreign, clients (distinct client addresses), and
the billed commands by name (`EVALSHA 2000, PFADD 2000`, most frequent first).
"""
import re
import sys

LINE = re.compile(r'^\d+\.\d+ \[(\d+) ([^\]]+)\] "([^"]*)"')


def main():
    log, label, offset = sys.argv[1], sys.argv[2], int(sys.argv[3])
    proxy = None
    if len(sys.argv) > 4:
        with open(sys.argv[4], encoding="utf-8") as f:
            proxy = {line.strip() for line in f if line.strip()}
    start = f'"ECHO" "edgecount-cost:{label}:start"'
    end = f'"ECHO" "edgecount-cost:{label}:end"'
    state = "before"
    if label == "@setup":
        state = "in"
        end = '"ECHO" "edgecount-cost:'
    commands = lua = foreign = 0
    by_command = {}
    clients = set()
    with open(log, "rb") as f:
        f.seek(offset)
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if state == "before":
                if line.endswith(start):
                    state = "in"
                continue
            if line.endswith(end) or (label == "@setup" and end in line):
                state = "after"
                break
            m = LINE.match(line)
            if not m:
                # A command with a newline in an argument is one line anyway (MONITOR escapes
                # it); anything else here is not a command line.
                continue
            client, name = m.group(2), m.group(3).upper()
            if client == "lua":
                lua += 1
                continue
            commands += 1
            by_command[name] = by_command.get(name, 0) + 1
            clients.add(client)
            if proxy is not None and client not in proxy:
                foreign += 1
    if state != "after":
        sys.exit(f"cost_count: window {label!r} not closed in {log} (state: {state})")
    names = sorted(by_command.items(), key=lambda kv: (-kv[1], kv[0]))
    print("\t".join([str(commands), str(lua), str(foreign), str(len(clients)),
                     ", ".join(f"{name} {count}" for name, count in names)]))


main()
