"""Turn benches/run.sh's measurements into benches/RESULTS.md (markdown on stdout).
    report.py RESULTS_TSV MD5FLOOR_TSV SCALE VERSION...
"""
import os
import platform
import sys
from collections import OrderedDict


def main():
    results, floor_file, scale, versions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    rows = OrderedDict()
    for line in open(results):
        w, tool, wall, cpu, rss, units, rc, server = line.rstrip("\n").split("\t")
        rows.setdefault(w, []).append(dict(tool=tool, wall=float(wall), cpu=float(cpu),
                                           rss=int(rss) / 1024, units=units, rc=int(rc),
                                           server=float(server)))
    floor = {}
    for line in open(floor_file):
        kind, w, cpu = line.rstrip("\n").split("\t")
        floor[(kind, w)] = float(cpu)
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("# Benchmark results\n")
    print(f"`benches/run.sh {scale}` — scale {scale} of the workloads; one run, one machine.\n")
    print(f"- Machine: {os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    print("- Server: s3s-fs 0.14.1 on 127.0.0.1 (same machine: the server's CPU is shared)")
    for v in versions:
        print(f"- {v}")
    notes = os.environ.get("BENCH_NOTES")
    if notes:
        print(f"\n{notes}")
    print()
    print("Wall time; rate in MB/s (bytes) or files/s; client CPU = user + sys seconds; "
          "peak RSS of the client; server CPU = the S3 server's user + sys seconds during the run, "
          "plus the latency proxy's in the 5 ms rows; busy = (client + server CPU) over "
          f"({os.cpu_count()} CPUs × wall), near 100% when the machine's CPUs are the bound. "
          "`× rclone`: rclone's (defaults) wall time over this tool's; "
          "`× best peer`: the fastest other tool's wall time over s3ferry's. A failed run is marked.\n")
    print("| workload | tool | wall s | rate | client CPU s | server CPU s | busy | peak RSS MiB | × rclone | × best peer |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w, rs in rows.items():
        base = next((r for r in rs if r["tool"] in ("rclone", "rclone check")), None)
        peers = [r for r in rs if r["tool"] != "s3ferry" and r["rc"] == 0]
        best = min(peers, key=lambda r: r["wall"]) if peers else None
        for r in rs:
            n, unit = r["units"].split()
            n = float(n)
            rate = f"{n / 1e6 / r['wall']:.0f} MB/s" if unit == "B" else f"{n / r['wall']:.0f} files/s"
            vs_rclone = f"{base['wall'] / r['wall']:.2f}" if base and r is not base else ""
            vs_best = f"{best['wall'] / r['wall']:.2f} (vs {best['tool']})" if best and r["tool"] == "s3ferry" else ""
            tool = r["tool"] + ("" if r["rc"] == 0 else f" (exit {r['rc']})")
            busy = (r["cpu"] + r["server"]) / (os.cpu_count() * r["wall"])
            print(f"| {w} | {tool} | {r['wall']:.2f} | {rate} | {r['cpu']:.2f} | {r['server']:.2f} | "
                  f"{busy:.0%} | {r['rss']:.0f} | {vs_rclone} | {vs_best} |")
    print()
    print("MD5 floor (coreutils md5sum over the same bytes, CPU seconds) and each tool's client CPU "
          "as a multiple of it:\n")
    for w, key in (("W1 registry mix", "w1"), ("W3 large files", "w3")):
        md5 = floor.get(("md5", key))
        if not md5:
            continue
        parts = [f"- {w}: floor {md5:.2f} s"]
        for tool in ("s3ferry", "rclone"):
            r = next((r for r in rows.get(w, []) if r["tool"] == tool), None)
            if r:
                parts.append(f"{tool} {r['cpu']:.2f} s ({r['cpu'] / md5:.2f}×)")
        print("; ".join(parts))
    w6 = next((r for r in rows.get("W6 1M tiny files, 64 MiB budget", []) if r["tool"] == "s3ferry"), None)
    if w6:
        print(f"\nMemory bound: W6 ({w6['units']}) peaked at {w6['rss']:.0f} MiB with a 64 MiB buffer "
              f"budget; the target is at most budget + 64 MiB = 128 MiB "
              f"({'met' if w6['rss'] <= 128 else 'NOT met'}).")
    sha = floor.get(("sha256", "w1"))
    s = next((r for r in rows.get("W1 registry mix", []) if r["tool"] == "s3ferry"), None)
    if sha and s and floor.get(("md5", "w1")):
        both = sha + floor[("md5", "w1")]
        print(f"\nIn registry mode s3ferry also proves each blob's SHA-256 (the other tools do not): "
              f"SHA-256 of the W1 blobs takes {sha:.2f} CPU s (OpenSSL), so MD5 + SHA-256 is "
              f"{both:.2f} s and s3ferry's W1 CPU is {s['cpu'] / both:.2f}× that.")

if __name__ == "__main__":
    main()
