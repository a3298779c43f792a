#!/usr/bin/env python3
"""Turns the JSON reports of a loadtest/compare.sh run into markdown tables.

    python3 compare_report.py [--header FILE] [--charts DIR] MANIFEST.tsv

MANIFEST has one tab-separated line per (case, server, round) run:
    case  scenario  server  status(ok|failed|skipped)  exit-code  json-path  clients  note  round  curl-mib
Every figure comes from the generator's JSON report: server CPU is what the
generator measured with --server-pid (from the server's own cgroup where
compare.sh could make one, else from the /proc tree, reaped children
included; `server.cpu_source` says which) from before the run until its
sessions had closed (`server.cpu_settled` false: a lower bound), and memory
per session divides the RSS growth by the sessions the generator really
held at once (`totals.sessions_peak`), not by the clients asked for.
A server run several rounds shows its median round (by the headline figure)
with every round's figure in the note: on a shared, noisy machine one lucky
round of any server (the ceiling included) is common, and a median is not
moved by it. The latency cases (single-ops, small-uploads, mirror-50,
mirror-200) are figure-by-server tables instead: each cell is the median of
that figure over the server's rounds, with its ratio to ringftp's, the best
peer and ringftp ÷ best peer.
and each JSON file is a `ringftp loadtest --json` report (schema_version 1,
docs/loadgen.md). One table per case: a row per server, every figure, and
the ratio of the case's headline figure to ringftp's. Standard library only.
"""
import argparse
import json
import os
import statistics
import sys

SERVER_ORDER = ["ringftp", "ringftp-base", "vsftpd", "pure-ftpd", "proftpd", "pyftpdlib", "ceiling"]
SERVER_LABEL = {"ceiling": "sendfile(2) ceiling", "ringftp-base": "ringftp (--baseline)"}
CASE_ORDER = ["login-storm", "login-storm-big", "mirror", "bigfile", "listing", "idle", "upload",
              "single-ops", "small-uploads", "mirror-50", "mirror-200"]
MiB = 1024.0 * 1024.0


# --------------------------------------------------------------------------
# what each case shows
# --------------------------------------------------------------------------
# headline: (column title, function report -> value, better: "lower"|"higher")
# phase: the histogram whose p50/p99/p99.9 are shown
def all_logged_in(r):
    v = r.get("all_logged_in_s")
    return v if v is not None else r.get("elapsed_s")


def server(r, key):
    s = r.get("server") or {}
    return s.get(key)


def cpu_ms_per_request(r):
    return server(r, "cpu_ms_per_request")


def rss_per_session_kib(r):
    """RSS growth over the sessions really held, else over the clients
    asked for (reports of older generators)."""
    v = server(r, "rss_growth_per_session_bytes")
    if v is None:
        v = server(r, "rss_growth_per_client_bytes")
    return None if v is None else v / 1024.0


def sessions_peak(r):
    return (r.get("totals") or {}).get("sessions_peak")


CASES = {
    "login-storm": dict(
        title="login-storm: {clients} clients connect + log in + QUIT at once",
        phase="request",
        phase_title="session",
        headline=("all logged in (s)", all_logged_in, "lower"),
    ),
    "login-storm-big": dict(
        title="login-storm: {clients} clients connect + log in + QUIT at once",
        phase="request",
        phase_title="session",
        headline=("all logged in (s)", all_logged_in, "lower"),
    ),
    "mirror": dict(
        title="mirror: {clients} logged-in clients RETR random files of the tree",
        phase="transfer",
        phase_title="transfer",
        headline=("server CPU ms/file", cpu_ms_per_request, "lower"),
        dup="cpu_ms",
    ),
    "bigfile": dict(
        title="bigfile: {clients} stream RETRs the 1 large file again and again",
        phase="transfer",
        phase_title="transfer",
        headline=("MiB/s", lambda r: r.get("totals", {}).get("mib_per_s"), "higher"),
        dup="mib",
        ceiling=True,
        curl=True,
    ),
    "listing": dict(
        title="listing: {clients} clients LIST and MLSD, in turn, a 10,000-entry directory",
        phase="request",
        phase_title="LIST/MLSD",
        headline=("listings/s", lambda r: r.get("totals", {}).get("requests_per_s"), "higher"),
        dup="rps",
        per_op=[("request.list", "LIST"), ("request.mlsd", "MLSD")],
    ),
    "idle": dict(
        title="idle: {clients} logged-in sessions held, a NOOP every few seconds each",
        phase="request",
        phase_title="NOOP",
        headline=("RSS KiB/session", rss_per_session_kib, "lower"),
    ),
    "upload": dict(
        title="upload: STOR of 1 MiB per request",
        phase="transfer",
        phase_title="transfer",
        headline=("MiB/s", lambda r: r.get("totals", {}).get("mib_per_s"), "higher"),
        dup="mib",
    ),
}


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------
def num(v, digits=3):
    """A figure with about `digits` significant digits; '–' when unknown."""
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 10 ** digits:
        return f"{v:,.0f}"
    for d in range(0, 6):
        if a >= 10 ** (digits - 1 - d):
            return f"{v:.{d}f}"
    return f"{v:.2g}"


def mib(b):
    return None if b is None else b / MiB


def ratio(v, base):
    if v is None or base is None or base == 0:
        return "–"
    x = v / base
    return f"{x:.2f}×" if x < 10 else f"{x:.0f}×"


def errors_cell(r):
    t = r.get("totals", {})
    n = t.get("errors", 0)
    if not n:
        s = "0"
    else:
        kinds = r.get("errors", {})
        detail = ", ".join(
            f"{k} {v.get('count', 0)}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1].get("count", 0))
        )
        s = f"**{n}** ({detail})" if detail else f"**{n}**"
    ab = t.get("abandoned", 0)
    if ab:
        s += f"; {ab} abandoned"
    return s


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i in (0, len(header) - 1) else "---:" for i in range(len(header))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out)


# --------------------------------------------------------------------------
def server_notes(rep):
    """What the reader must know about the server figures of one report."""
    srv = rep.get("server") or {}
    notes = []
    if srv and srv.get("cpu_source") == "proc":
        notes.append("server CPU from /proc (no cgroup of its own)")
    if srv and srv.get("cpu_settled") is False:
        notes.append("server CPU is a lower bound: sessions still closing 5 s after the run")
    return notes


def load_manifest(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            parts += [""] * (10 - len(parts))
            case, scenario, srv, status, rc, jpath, clients, note, rnd, curl = parts[:10]
            rep = None
            if status == "ok":
                try:
                    with open(jpath) as jf:
                        rep = json.load(jf)
                except (OSError, ValueError) as e:
                    status, note = "failed", f"unreadable JSON report {jpath}: {e}"
            if rep is not None:
                note = "; ".join(x for x in [note] + server_notes(rep) if x)
            runs.append(
                dict(case=case, scenario=scenario, server=srv, status=status, rc=rc, json=jpath,
                     clients=clients, note=note, report=rep, round=rnd or "1",
                     curl=[float(curl)] if curl not in ("", "-") else [])
            )
    return runs


def median_rounds(runs, hfun, better):
    """One run per server: its median round, every round's figure in its note."""
    by = {}
    for x in runs:
        by.setdefault(x["server"], []).append(x)
    out = []
    for srv, xs in by.items():
        curls = [c for x in xs for c in x.get("curl", [])]
        if len(xs) == 1:
            out.append(dict(xs[0], curl=curls))
            continue
        ok = [x for x in xs if x["report"] is not None and hfun(x["report"]) is not None]
        if not ok:
            out.append(xs[-1])
            continue
        ranked = sorted(ok, key=lambda x: hfun(x["report"]), reverse=(better == "higher"))
        pick = ranked[len(ranked) // 2]
        figures = ", ".join(
            num(hfun(x["report"])) if x["report"] is not None and hfun(x["report"]) is not None else x["status"]
            for x in sorted(xs, key=lambda x: int(x["round"]) if x["round"].isdigit() else 0)
        )
        pick = dict(pick, curl=curls)
        pick["note"] = "; ".join(
            n for n in (pick["note"], f"median of {len(xs)} rounds (round {pick['round']}); rounds: {figures}") if n
        )
        out.append(pick)
    return out


def case_table(case, runs, charts=None):
    spec = CASES.get(case, dict(title=case, phase="request", phase_title="request",
                                headline=("requests/s", lambda r: r.get("totals", {}).get("requests_per_s"), "higher")))
    hname, hfun, better = spec["headline"]
    runs = median_rounds(runs, hfun, better)
    runs = sorted(runs, key=lambda x: SERVER_ORDER.index(x["server"]) if x["server"] in SERVER_ORDER else 99)
    ph = spec["phase_title"]
    ok = [x for x in runs if x["report"] is not None]
    clients = sorted({str(x["report"]["config"]["clients"]) for x in ok if x["server"] != "ceiling"}) or sorted(
        {x["clients"] for x in runs if x["clients"] not in ("", "-")}
    )
    title = spec["title"].format(clients="/".join(clients) if clients else "?")
    base = next((hfun(x["report"]) for x in ok if x["server"] == "ringftp"), None)
    ceil = next((hfun(x["report"]) for x in ok if x["server"] == "ceiling"), None) if spec.get("ceiling") else None

    # (key, title, function report -> cell); the column repeating the
    # headline figure is left out.
    cols = [
        ("ok", "ok requests", lambda r: num(r["totals"].get("ok"))),
        ("rps", "requests/s", lambda r: num(r["totals"].get("requests_per_s"))),
        ("mib", "MiB/s", lambda r: num(r["totals"].get("mib_per_s"))),
        ("p50", f"{ph} p50 ms", lambda r: num(phase(r).get("p50_ms"))),
        ("p99", f"{ph} p99 ms", lambda r: num(phase(r).get("p99_ms"))),
        ("p999", f"{ph} p99.9 ms", lambda r: num(phase(r).get("p99_9_ms"))),
    ]
    for key, name in spec.get("per_op", []):
        cols += [
            (key + ".n", f"{name} ok", lambda r, k=key: num(((r.get("phases") or {}).get(k) or {}).get("count"))),
            (key + ".p50", f"{name} p50 ms", lambda r, k=key: num(((r.get("phases") or {}).get(k) or {}).get("p50_ms"))),
        ]
    cols += [
        ("err", "errors", errors_cell),
        ("cpu", "server CPU s", lambda r: num(srv(r).get("cpu_s"))),
        ("cpu_ms", "server CPU ms/req", lambda r: num(srv(r).get("cpu_ms_per_request"))),
    ]
    if case == "idle":
        cols.append(("held", "sessions held (peak)", lambda r: num(sessions_peak(r))))
        cols.append(("rss0", "server RSS start MiB", lambda r: num(mib(srv(r).get("rss_start_bytes")))))
    cols += [
        ("rss", "server RSS peak MiB", lambda r: num(mib(srv(r).get("rss_peak_bytes")))),
        ("pss", "server PSS peak MiB", lambda r: num(mib(srv(r).get("pss_peak_bytes")))),
        ("procs", "server procs peak", lambda r: num(srv(r).get("processes_peak"))),
        ("gen", "generator CPU %", lambda r: num((r.get("generator") or {}).get("cpu_percent"))),
    ]
    cols = [c for c in cols if c[0] != spec.get("dup")]

    def phase(r):
        return (r.get("phases") or {}).get(spec["phase"]) or {}

    def srv(r):
        return r.get("server") or {}

    header = ["server", "clients", hname, "÷ ringftp"] + (["÷ ceiling"] if spec.get("ceiling") else [])
    header += ["curl MiB/s", "curl ÷ generator"] if spec.get("curl") else []
    header += [c[1] for c in cols] + ["note"]

    rows = []
    for x in runs:
        label = SERVER_LABEL.get(x["server"], x["server"])
        r = x["report"]
        if r is None:
            why = x["status"] + (f" (exit {x['rc']})" if x["rc"] not in ("", "-", "0") else "")
            row = [label, x["clients"] or "–"] + ["–"] * (len(header) - 3)
            row.append(f"{why}: {x['note']}" if x["note"] else why)
            rows.append(row)
            continue
        r.setdefault("totals", {})
        hv = hfun(r)
        row = [
            f"**{label}**" if x["server"] == "ringftp" else label,
            num(r.get("config", {}).get("clients")),
            num(hv),
            ratio(hv, base),
        ]
        if spec.get("ceiling"):
            row.append(ratio(hv, ceil))
        if spec.get("curl"):
            cm = statistics.median(x["curl"]) if x.get("curl") else None
            row += [num(cm), ratio(cm, hv)]
        row += [c[2](r) for c in cols]
        note = []
        if x["note"]:
            note.append(x["note"])
        if x["rc"] not in ("", "-", "0"):
            note.append(f"generator exit {x['rc']}")
        if x["server"] == "ceiling":
            note.append("blocking sendfile(2) loop, same reader")
        if spec.get("curl") and len(x.get("curl", [])) > 1:
            note.append("curl: median of " + ", ".join(num(c) for c in x["curl"]))
        held, asked = sessions_peak(r), (r.get("config") or {}).get("clients")
        if held is not None and asked and held < asked:
            note.append(f"held only {held:,} of {asked:,} sessions at once (the rest were still connecting or had failed)")
        for key, name in spec.get("per_op", []):
            if key not in (r.get("phases") or {}):
                codes = ", ".join(k for k in (r.get("errors") or {}) if k[:1] == "5")
                note.append(f"no successful {name}" + (f" (replies {codes}: not implemented by this server)" if codes else ""))
        row.append("; ".join(note))
        rows.append(row)

    lines = [f"## {title}", ""]
    lines.append(table(header, rows))
    if charts and os.path.isfile(os.path.join(charts, f"{case}.svg")):
        lines.append("")
        lines.append(f"![{case}: latency over time and by percentile](charts/{case}.svg)")
    lines.append("")
    lines.append(
        f"Headline: {hname}, {better} is better; ÷ ringftp is each server's figure divided by ringftp's"
        + ("; ÷ ceiling divides by the plain sendfile(2) loop's (target for ringftp: ≥ 0.95)" if spec.get("ceiling") else "")
        + ("; curl MiB/s is one `curl -o /dev/null` download of the same file after each round (median over rounds), an"
           " independent client cross-checking the generator's reader" if spec.get("curl") else "")
        + "."
        + f" Percentiles are of the `{spec['phase']}` phase."
    )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# the latency cases: a figure per row, a server per column, medians of rounds
# --------------------------------------------------------------------------
def phase_fig(name, key):
    def f(r):
        return ((r.get("phases") or {}).get(name) or {}).get(key)
    return f


def op_fig(op, key):
    """A percentile of one op of a mix; None when the op never succeeded."""
    def f(r):
        if ((r.get("ops") or {}).get(op) or {}).get("ok", 0) == 0:
            return None
        return phase_fig(f"request.{op}", key)(r)
    return f


def per_file_rate(r):
    """Files a second one client gets back to back: 1000 / mean ms."""
    m = phase_fig("request", "mean_ms")(r)
    return 1000.0 / m if m else None


OP_LABEL = {
    "noop": "NOOP round trip",
    "size": "SIZE",
    "mdtm": "MDTM",
    "pasv-retr": "PASV + RETR 1 KiB",
    "epsv-retr": "EPSV + RETR 1 KiB",
    "list": "LIST of 100 entries",
    "stor": "STOR 1 KiB (new file)",
}

MIRROR_ROWS = [
    ("files/s", lambda r: (r.get("totals") or {}).get("requests_per_s"), "higher"),
    ("MiB/s", lambda r: (r.get("totals") or {}).get("mib_per_s"), "higher"),
    ("request p50 ms", phase_fig("request", "p50_ms"), "lower"),
    ("request p99 ms", phase_fig("request", "p99_ms"), "lower"),
    ("request p99.9 ms", phase_fig("request", "p99_9_ms"), "lower"),
    ("time to first byte p99 ms", phase_fig("first_byte", "p99_ms"), "lower"),
    ("time to first byte p99.9 ms", phase_fig("first_byte", "p99_9_ms"), "lower"),
    ("request p99 ms, files ≤ 64 KiB", phase_fig("request.le_64KiB", "p99_ms"), "lower"),
    ("request p99 ms, files ≤ 1 MiB", phase_fig("request.le_1MiB", "p99_ms"), "lower"),
    ("request p99 ms, files > 1 MiB", phase_fig("request.gt_1MiB", "p99_ms"), "lower"),
    ("request p99.9 ms, files ≤ 64 KiB", phase_fig("request.le_64KiB", "p99_9_ms"), "lower"),
    ("server CPU ms/file", lambda r: server(r, "cpu_ms_per_request"), "lower"),
]

UPLOAD_ROWS = [
    ("time per file p50 ms", phase_fig("request", "p50_ms"), "lower"),
    ("time per file p90 ms", phase_fig("request", "p90_ms"), "lower"),
    ("time per file p99 ms", phase_fig("request", "p99_ms"), "lower"),
    ("time per file p99.9 ms", phase_fig("request", "p99_9_ms"), "lower"),
    ("files/s (1000 / mean ms)", per_file_rate, "higher"),
    ("server CPU ms/file", lambda r: server(r, "cpu_ms_per_request"), "lower"),
]

FIGURE_CASES = {
    "single-ops": dict(
        title="single-ops: one client, each operation in turn (ms per operation)",
        per_op=True,
    ),
    "small-uploads": dict(
        title="small-uploads: one client STORs new 1 KiB files one after another",
        rows=UPLOAD_ROWS,
        round_cols=[("p50 ms", phase_fig("request", "p50_ms")), ("p99 ms", phase_fig("request", "p99_ms"))],
    ),
    "mirror-50": dict(
        title="mirror-50: 50 logged-in clients RETR random files of the tree",
        rows=MIRROR_ROWS,
        round_cols=[
            ("files/s", lambda r: (r.get("totals") or {}).get("requests_per_s")),
            ("request p99 ms", phase_fig("request", "p99_ms")),
            ("request p99.9 ms", phase_fig("request", "p99_9_ms")),
            ("TTFB p99.9 ms", phase_fig("first_byte", "p99_9_ms")),
            ("CPU ms/file", lambda r: server(r, "cpu_ms_per_request")),
        ],
    ),
}
FIGURE_CASES["mirror-200"] = dict(FIGURE_CASES["mirror-50"], title="mirror-200: 200 logged-in clients RETR random files of the tree")


def median_of(values):
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def figure_rows_table(rows, servers, by_server):
    """rows: (label, fn, better); a cell per server: the median over its
    rounds, peers with (÷ ringftp); then the best peer and ringftp ÷ it."""
    # the --baseline build is ringftp too: a cell with its ratio, not a peer
    peers = [s for s in servers if s not in ("ringftp", "ringftp-base")]
    header = ["figure"] + [("**ringftp**" if s == "ringftp" else SERVER_LABEL.get(s, s)) for s in servers]
    if "ringftp" in servers and peers:
        header += ["best peer", "ringftp ÷ best peer"]
    out = []
    for label, fn, better in rows:
        vals = {s: median_of(fn(x["report"]) for x in by_server[s] if x["report"] is not None) for s in servers}
        if all(v is None for v in vals.values()):
            continue
        base = vals.get("ringftp")
        row = [label]
        for s in servers:
            v = vals[s]
            if s == "ringftp" or v is None or base is None:
                row.append(num(v))
            else:
                row.append(f"{num(v)} ({ratio(v, base)})")
        if "ringftp" in servers and peers:
            have = [(vals[s], s) for s in peers if vals[s] is not None]
            if have:
                bv, bs = (min if better == "lower" else max)(have)
                row += [f"{num(bv)} ({SERVER_LABEL.get(bs, bs)})", ratio(base, bv)]
            else:
                row += ["–", "–"]
        out.append(row)
    return table(header, out)


def runs_notes(xs):
    """What went wrong in a server's rounds: errors by kind and by op, exit
    codes, skipped runs."""
    notes = []
    errs, by_op, rcs = {}, {}, set()
    for x in xs:
        r = x["report"]
        if r is None:
            notes.append(f"round {x['round']}: {x['status']}" + (f": {x['note']}" if x["note"] else ""))
            continue
        for k, v in (r.get("errors") or {}).items():
            e = errs.setdefault(k, [0, v.get("example", "")])
            e[0] += v.get("count", 0)
        for op, c in (r.get("ops") or {}).items():
            if c.get("errors"):
                by_op[op] = by_op.get(op, 0) + c["errors"]
        if x["rc"] not in ("", "-", "0"):
            rcs.add(x["rc"])
    if errs:
        notes.append("errors: " + ", ".join(f"{k} ×{n} (e.g. {ex})" for k, (n, ex) in sorted(errs.items())))
    if by_op:
        notes.append("failed ops: " + ", ".join(f"{op} ×{n}" for op, n in sorted(by_op.items())))
    if rcs:
        notes.append("generator exit " + "/".join(sorted(rcs)))
    for n in sorted({x["note"] for x in xs if x["report"] is not None and x["note"]}):
        notes.append(n)
    return notes


def figure_case(case, runs, charts=None):
    spec = FIGURE_CASES[case]
    by_server = {}
    for x in runs:
        by_server.setdefault(x["server"], []).append(x)
    servers = sorted(by_server, key=lambda s: SERVER_ORDER.index(s) if s in SERVER_ORDER else 99)
    lines = [f"## {spec['title']}", ""]
    reports = [x["report"] for s in servers for x in by_server[s] if x["report"] is not None]
    if spec.get("per_op"):
        ops = []
        for r in reports:
            for op in (r.get("config") or {}).get("ops", []):
                if op not in ops:
                    ops.append(op)
        for key, what in (("p50_ms", "median"), ("p90_ms", "p90"), ("p99_ms", "p99")):
            lines.append(f"**{what}, ms** (median over rounds; peers: value (÷ ringftp))")
            lines.append("")
            rows = [(OP_LABEL.get(op, op), op_fig(op, key), "lower") for op in ops]
            lines.append(figure_rows_table(rows, servers, by_server))
            lines.append("")
    else:
        lines.append("Each cell is the median over the server's rounds; peers: value (÷ ringftp).")
        lines.append("")
        lines.append(figure_rows_table(spec["rows"], servers, by_server))
        lines.append("")
    # the runs: rounds, what failed, CPU; and each round's headline figures
    rc = spec.get("round_cols", [])
    header = ["server", "rounds", "ok requests (all rounds)", "errors (all rounds)"] + [f"{t} by round" for t, _ in rc] + ["note"]
    rows = []
    for s in servers:
        xs = sorted(by_server[s], key=lambda x: int(x["round"]) if x["round"].isdigit() else 0)
        ok = [x["report"] for x in xs if x["report"] is not None]
        n_ok = sum((r.get("totals") or {}).get("ok", 0) for r in ok)
        n_err = sum((r.get("totals") or {}).get("errors", 0) for r in ok)
        n_ab = sum((r.get("totals") or {}).get("abandoned", 0) for r in ok)
        if not ok and all(x["status"] == "skipped" for x in xs):
            rows.append([SERVER_LABEL.get(s, s), "0", "–", "–"] + ["–"] * len(rc) + [f"skipped: {xs[0]['note']}"])
            continue
        row = [
            f"**{s}**" if s == "ringftp" else SERVER_LABEL.get(s, s),
            f"{len(ok)} of {len(xs)}",
            num(n_ok),
            (f"**{n_err}**" if n_err else "0") + (f"; {n_ab} abandoned" if n_ab else ""),
        ]
        for _, fn in rc:
            row.append(", ".join(num(fn(x["report"])) if x["report"] is not None else "–" for x in xs))
        row.append("; ".join(runs_notes(xs)))
        rows.append(row)
    lines.append(table(header, rows))
    if charts and os.path.isfile(os.path.join(charts, f"{case}.svg")):
        lines.append("")
        lines.append(f"![{case}: latency over time and by percentile, first round of each server](charts/{case}.svg)")
    lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest")
    ap.add_argument("--header", help="markdown to print first (the run's parameters)")
    ap.add_argument("--charts", help="directory of CASE.svg charts, linked from each table")
    a = ap.parse_args()
    runs = load_manifest(a.manifest)
    out = []
    if a.header:
        with open(a.header) as f:
            out.append(f.read().rstrip("\n") + "\n")
    cases = sorted({x["case"] for x in runs}, key=lambda c: CASE_ORDER.index(c) if c in CASE_ORDER else 99)
    for c in cases:
        cr = [x for x in runs if x["case"] == c]
        if all(x["status"] == "skipped" for x in cr):
            out.append(f"## {c}\n\nSkipped for every server: {cr[0]['note']}.\n")
            continue
        if c in FIGURE_CASES:
            out.append(figure_case(c, cr, a.charts))
        else:
            out.append(case_table(c, cr, a.charts))
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
