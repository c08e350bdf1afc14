r"""Read one line of Redis MONITOR output on stdin and write the command's name and arguments,
each NUL-terminated, to stdout (for `mapfile -d ''`). MONITOR quotes every argument and escapes
\\, \", \n, \r, \t, \a, \b and other bytes as \xHH (sdscatrepr); this undoes that.
Used by scripts/bench/serve.sh to replay the exact EVALSHA of a hit with redis-benchmark."""
import re
import sys

ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b"}


def unquote(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode()
            i += 1
        elif text[i + 1] == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            out += ESCAPES.get(text[i + 1], text[i + 1].encode())
            i += 2
    return bytes(out)


line = sys.stdin.readline()
# `<time> [<db> <client>] "NAME" "arg" …`
_, _, command = line.partition("] ")
args = [unquote(m.group(1)) for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', command)]
if any(b"\0" in a for a in args):
    sys.exit("an argument holds a NUL byte: it cannot be passed on NUL-separated")
sys.stdout.buffer.write(b"".join(a + b"\0" for a in args))
