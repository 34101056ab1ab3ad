#!/usr/bin/env python3
"""Turn the raw results of bench/run.sh (hyperfine JSON, runs.tsv, meta.json) into the
markdown that bench-data/results.md holds and BENCHMARKS.md quotes."""

import json
import os
import sys

TERM_COUNTS = (100, 1000, 10000)
MIB = 1024  # runs.tsv holds KiB


def load(out, name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def fmt_time(s):
    if s is None:
        return "—"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 0.01:
        return f"{s * 1e3:.0f} ms"
    return f"{s * 1e3:.2f} ms"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def fmt_mib(kb):
    return "—" if kb is None else f"{kb / MIB:.1f} MiB"


def main():
    out = sys.argv[1]
    meta = load(out, "meta.json")
    medians = {}
    runs_cpu = {}
    cpu = {}
    for n in TERM_COUNTS:
        doc = load(out, f"hf-{n}.json")
        for r in (doc or {}).get("results", []):
            medians[(r["command"], n)] = r["median"]
            runs_cpu[(r["command"], n)] = r["user"] + r["system"]
    cold = {r["command"]: r for r in (load(out, "hf-cold.json") or {}).get("results", [])}
    for name, r in cold.items():
        cpu[name] = r["user"] + r["system"]

    rss, found = {}, {}
    with open(os.path.join(out, "runs.tsv"), encoding="utf-8") as f:
        for line in f:
            tool, n, kb, hits = line.rstrip("\n").split("\t")
            rss[(tool, int(n))] = int(kb) if kb else None
            found[(tool, int(n))] = hits

    p = print
    p(f"Measured {meta['date']} on {meta['nproc']} × {meta['cpu']}, gate at `{meta['commit']}`"
      + (f" with uncommitted changes to {', '.join(f'`{d}`' for d in meta['dirty'])}" if meta["dirty"] else "")
      + ".")
    p(f"{meta['posts']:,} posts; medians of {meta['runs']} runs (hyperfine -N); "
      f"{meta['rg']}; {meta['grep']}; {meta['hyperfine']}.")
    p()
    p("| deny terms | gate check --jsonl | rg -F -i -w | grep -F -i -w | floor | gate ÷ rg | gate ÷ grep | gate ÷ floor | gate peak RSS |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in TERM_COUNTS:
        g = medians.get(("gate", n))
        r = medians.get(("rg", n))
        gr = medians.get(("grep", n))
        fl = medians.get(("floor", n))
        grep_cell = fmt_time(gr) if gr is not None else f"not run (> {meta['grep_max_terms']:,} terms)"
        p(f"| {n:,} | {fmt_time(g)} | {fmt_time(r)} | {grep_cell} | {fmt_time(fl)} | "
          f"{fmt_ratio(g, r)} | {fmt_ratio(g, gr)} | {fmt_ratio(g, fl)} | {fmt_mib(rss.get(('gate', n)))} |")
    p()
    p(f"CPU of the same runs (mean user+sys): `gate` judges on every CPU it may use "
      f"({meta['nproc']} here), `gate -j 1` on one thread; rg, grep and the floor search one "
      "file on one thread.")
    p()
    p("| deny terms | gate CPU | gate -j 1 wall | gate -j 1 CPU | rg CPU | grep CPU | floor CPU | gate CPU ÷ rg CPU | gate -j 1 wall ÷ rg |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in TERM_COUNTS:
        c = {tool: runs_cpu.get((tool, n)) for tool in ("gate", "gate -j 1", "rg", "grep", "floor")}
        one = medians.get(("gate -j 1", n))
        p(f"| {n:,} | {fmt_time(c['gate'])} | {fmt_time(one)} | {fmt_time(c['gate -j 1'])} | "
          f"{fmt_time(c['rg'])} | {fmt_time(c['grep'])} | "
          f"{fmt_time(c['floor'])} | {fmt_ratio(c['gate'], c['rg'])} | {fmt_ratio(one, medians.get(('rg', n)))} |")
    p()
    p("Cold start (one post, `gate --policy policy-100.toml check \"hello world\"`, and the same "
      "with `policy-10000.toml`), "
      f"{meta['cold_runs']} runs:")
    p()
    p("| command | median wall | mean user+sys CPU | peak RSS |")
    p("|---|---:|---:|---:|")
    for name in ("gate check", "gate check (10,000 terms)", "/bin/true"):
        r = cold.get(name)
        if r:
            kb = rss.get(("cold", 1)) if name == "gate check" else None
            p(f"| `{name}` | {fmt_time(r['median'])} | {fmt_time(cpu[name])} | {fmt_mib(kb)} |")
    g, t = cold.get("gate check"), cold.get("/bin/true")
    if g and t:
        p(f"| ratio | {fmt_ratio(g['median'], t['median'])} | {fmt_ratio(cpu['gate check'], cpu['/bin/true'])} | |")
    p()
    p("Peak RSS of the other tools, and what each found (gate: posts denied; rg and grep: "
      "matching lines; floor: raw matches, no word check):")
    p()
    p("| deny terms | rg RSS | grep RSS | floor RSS | gate denied | rg lines | grep lines | floor matches |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in TERM_COUNTS:
        p(f"| {n:,} | {fmt_mib(rss.get(('rg', n)))} | {fmt_mib(rss.get(('grep', n)))} | "
          f"{fmt_mib(rss.get(('floor', n)))} | {found.get(('gate', n), '—')} | {found.get(('rg', n), '—')} | "
          f"{found.get(('grep', n), '—')} | {found.get(('floor', n), '—')} |")
    p()
    p("Targets:")
    p()

    def check(ok, text):
        p(f"- {'met' if ok else 'NOT met'}: {text}")

    for n in TERM_COUNTS:
        g = medians.get(("gate", n))
        for tool in ("rg", "grep"):
            o = medians.get((tool, n))
            if g is not None and o is not None:
                check(g < o, f"faster than {tool} at {n:,} terms ({fmt_ratio(g, o)})")
        fl = medians.get(("floor", n))
        if g is not None and fl is not None:
            check(g <= 3 * fl, f"within 3× of the floor at {n:,} terms ({fmt_ratio(g, fl)})")
    gc, tc = cpu.get("gate check"), cpu.get("/bin/true")
    if gc is not None and tc:
        check(gc <= 2 * tc, f"cold start CPU within 2× of /bin/true ({fmt_ratio(gc, tc)})")
    kb = rss.get(("gate", 10000))
    if kb is not None:
        check(kb <= 64 * MIB, f"peak RSS ≤ 64 MiB at 10,000 terms ({fmt_mib(kb)})")


if __name__ == "__main__":
    main()
