#!/usr/bin/env python3
"""Draws the demo's SVG chart: requests per instance per second, with the
deploy steps of each instance marked.

  demo_chart.py --timeline timeline.csv --events events.csv --out chart.svg

timeline.csv: second,instance,requests,ok,failed,version   (from zkroll-loadgen)
events.csv:   second,instance,step                          (from scripts/demo.sh)
"""
import argparse
import collections
import csv
import html

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
          "#e377c2", "#7f7f7f"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeline", required=True)
    ap.add_argument("--events")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="requests per instance per second")
    args = ap.parse_args()

    series = collections.defaultdict(dict)  # instance -> second -> requests
    failed = collections.defaultdict(int)   # second -> failed
    with open(args.timeline) as f:
        for row in csv.DictReader(f):
            sec = int(float(row["second"]))
            series[row["instance"]][sec] = int(row["requests"])
            failed[sec] += int(row.get("failed") or 0)
    events = []
    if args.events:
        with open(args.events) as f:
            for row in csv.DictReader(f):
                events.append((float(row["second"]), row["instance"], row["step"]))
    if not series:
        raise SystemExit("timeline is empty")

    instances = sorted(series)
    last = max(max(s) for s in series.values())
    peak = max(max(s.values()) for s in series.values()) or 1
    W, H, L, R, T, B = 1100, 520, 60, 200, 40, 50
    pw, ph = W - L - R, H - T - B

    def x(sec):
        return L + pw * sec / max(last, 1)

    def y(v):
        return T + ph - ph * v / peak

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="22" font-size="15">{html.escape(args.title)}</text>',
           f'<line x1="{L}" y1="{T + ph}" x2="{L + pw}" y2="{T + ph}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{T + ph}" stroke="black"/>']
    for i in range(5):
        v = peak * i / 4
        out.append(f'<text x="{L - 6}" y="{y(v) + 4}" text-anchor="end">{v:.0f}</text>')
        out.append(f'<line x1="{L}" y1="{y(v)}" x2="{L + pw}" y2="{y(v)}" stroke="#eee"/>')
    step = max(1, last // 10)
    for s in range(0, last + 1, step):
        out.append(f'<text x="{x(s)}" y="{T + ph + 16}" text-anchor="middle">{s}s</text>')
    for idx, inst in enumerate(instances):
        color = COLORS[idx % len(COLORS)]
        pts = " ".join(f"{x(s):.1f},{y(series[inst].get(s, 0)):.1f}"
                       for s in range(0, last + 1))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{pts}"/>')
        ly = T + 14 + idx * 16
        out.append(f'<rect x="{L + pw + 12}" y="{ly - 9}" width="12" height="3" fill="{color}"/>')
        out.append(f'<text x="{L + pw + 28}" y="{ly - 4}">{html.escape(inst)}</text>')
    dashes = {"pause": "6,3", "command": "2,2", "registered": ""}
    for sec, inst, what in events:
        color = COLORS[instances.index(inst) % len(COLORS)] if inst in instances else "#444"
        dash = dashes.get(what, "1,4")
        out.append(f'<line x1="{x(sec):.1f}" y1="{T}" x2="{x(sec):.1f}" y2="{T + ph}" '
                   f'stroke="{color}"' + (f' stroke-dasharray="{dash}"' if dash else '') +
                   ' stroke-width="1.2"/>')
        out.append(f'<text x="{x(sec) + 2:.1f}" y="{T + ph - 4}" fill="{color}" '
                   f'font-size="9">{html.escape(what[0].upper())}</text>')
    ly = T + 14 + len(instances) * 16 + 30
    for what, dash in dashes.items():
        out.append(f'<line x1="{L + pw + 12}" y1="{ly - 4}" x2="{L + pw + 36}" y2="{ly - 4}" '
                   'stroke="#444"' + (f' stroke-dasharray="{dash}"' if dash else '') + '/>')
        out.append(f'<text x="{L + pw + 42}" y="{ly}">{what[0].upper()}: {html.escape(what)}</text>')
        ly += 16
    bad = sum(failed.values())
    out.append(f'<text x="{L + pw + 12}" y="{T + 14 + len(instances) * 16 + 6}">'
               f'failed requests: {bad}</text>')
    out.append("</svg>")
    with open(args.out, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
