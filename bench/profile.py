#!/usr/bin/env python3
"""Summarise a callgrind dump of `bench/profile`: instructions and allocations per request.

usage: profile.py DUMP REQUESTS [--callers FUNCTION[,FUNCTION]]

Prints the user-space instructions (Ir) per request, grouped by crate (allocator and
memcpy apart), and the number of malloc/free/realloc calls per request with the callers
of the Rust allocator shims. Counts are instructions, not time: repeatable whatever else
the machine runs, but blind to the kernel (socket I/O) and to cache misses.
"""

import collections
import re
import subprocess
import sys

CRATE = re.compile(r"index\.crates\.io-[0-9a-f]+/([A-Za-z0-9_\-]+?)-\d+\.\d+[^/]*/")
GENERIC = re.compile(
    r"(opentelemetry|tracing_subscriber|tracing|tower_http|axum|hyper|http::|tokio|moka|sha2|tower::)"
)


def exclusive_rows(dump):
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", dump],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        value = int(m.group(1).replace(",", ""))
        if value < 10**15:  # callgrind_annotate prints wrapped-around totals after a zeroing
            rows.append((value, m.group(2)))
    return rows


def group(name):
    if re.search(r"malloc\.c|arena\.c|__rdl_|__rust_(alloc|dealloc|realloc)|raw_vec", name):
        return "allocator (glibc malloc/free, Rust alloc shims, Vec growth)"
    if re.search(r"memmove|memcpy|memset|memcmp", name):
        return "libc memcpy/memset"
    if "libc.so" in name or name.startswith("./"):
        return "libc other"
    m = CRATE.search(name)
    if m:
        return m.group(1)
    if "/src/" in name and "/rustc/" not in name and "registry" not in name:
        return "project source: " + name.split(":")[0].split("/src/")[-1]
    if "/rustc/" in name:
        function = name.split(":", 1)[1] if ":" in name else name
        g = GENERIC.search(function)
        return "std/core generics of " + (g.group(1).rstrip(":") if g else "other")
    return "other"


def calls(dump, targets):
    names, counts, callers = {}, collections.Counter(), collections.defaultdict(collections.Counter)
    current, pending = None, None
    with open(dump, errors="replace") as fh:
        for line in fh:
            m = re.match(r"^(fn|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                if name:
                    names[ident] = name
                if kind == "fn":
                    current = ident
                else:
                    pending = ident
                continue
            m = re.match(r"^calls=(\d+)", line)
            if m and pending is not None:
                name = names.get(pending, "?")
                if name in targets:
                    counts[name] += int(m.group(1))
                    callers[name][names.get(current, "?")] += int(m.group(1))
                pending = None
    return counts, callers


def main():
    dump, n = sys.argv[1], int(sys.argv[2])
    rows = exclusive_rows(dump)
    total = sum(v for v, _ in rows)
    print(f"  {total / n:,.0f} instructions per request (user space, {n} requests)")
    groups = collections.Counter()
    for value, name in rows:
        groups[group(name)] += value
    for name, value in groups.most_common(18):
        print(f"  {value / n:9,.0f} Ir/request {value * 100 / total:5.1f}%  {name}")
    counts, callers = calls(dump, {"malloc", "free", "realloc", "__rustc::__rust_alloc"})
    print(
        f"  allocations per request: malloc {counts['malloc'] / n:.1f}, "
        f"free {counts['free'] / n:.1f}, realloc {counts['realloc'] / n:.1f}"
    )
    print("  callers of __rust_alloc, per request:")
    for caller, c in callers["__rustc::__rust_alloc"].most_common(12):
        print(f"    {c / n:6.1f}  {caller[:150]}")


if __name__ == "__main__":
    main()
