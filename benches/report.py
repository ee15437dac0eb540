"""Turn benches/run.sh's measurements into benches/RESULTS.md (markdown on stdout).
    report.py RESULTS_TSV MD5FLOOR_TSV SCALE SERVER_RGW SERVER_FS VERSION...
The headline comes first and leads with what the client controls (its CPU per file and per
verified byte), then wall times at 5 ms RTT; the full table of runs follows.
"""
import os
import platform
import sys
from collections import OrderedDict

TOOLS = ("s3ferry", "rclone", "rclone --transfers 64", "s5cmd", "aws cli", "s3sync",
         "s3sync --worker-size 64")
SCALE = {"s100k": 100_000, "s300k": 300_000, "s1m": 1_000_000}
SERVERS = {"rgw": "RGW", "slow": "RGW + 5 ms", "fs": "s3s-fs", "rgwfs": "RGW → s3s-fs"}


def main():
    results, floor_file, scale = sys.argv[1], sys.argv[2], sys.argv[3]
    rgw_server, fs_server, versions = sys.argv[4], sys.argv[5], sys.argv[6:]
    rows = OrderedDict()
    for line in open(results):
        w, tool, wall, cpu, rss, units, rc, server, remote = line.rstrip("\n").split("\t")
        n, unit = units.split()
        rows.setdefault(w, []).append(dict(tool=tool, wall=float(wall), cpu=float(cpu),
                                           rss=int(rss) / 1024, n=float(n), unit=unit,
                                           units=units, rc=int(rc), server=float(server),
                                           remote=remote))
    floor = {}
    for line in open(floor_file):
        kind, w, cpu = line.rstrip("\n").split("\t")
        floor[(kind, w)] = float(cpu)

    def row(w, tool):
        return next((r for r in rows.get(w, []) if r["tool"] == tool), None)

    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), "?")
    cpus = os.cpu_count()
    print("# Benchmark results\n")
    print(f"`benches/run.sh {scale}` — scale {scale} of the workloads; one run, one machine.\n")
    print(f"- Machine: {cpus} CPUs ({model}), Linux {platform.release()}, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    print(f"- Headline server: {rgw_server}, on 127.0.0.1")
    print(f"- Secondary server: {fs_server} on 127.0.0.1 (W3 again, and W6)")
    print("- Every server shares the client's CPUs; the latency proxy (5 ms RTT) is Python on the "
          "same machine")
    print("- Before every timed run and every floor: the page cache is dropped (every tool reads "
          "its source cold, as a migration does) and the server is left to go idle (background "
          "work from the run before, such as bluestore compaction, is nobody's cost); the servers "
          "were warmed up first (RGW creates its pools on the first writes)")
    for v in versions:
        print(f"- {v}")
    notes = os.environ.get("BENCH_NOTES")
    if notes:
        print(f"\n{notes}")

    # --- the headline ------------------------------------------------------------------------
    print("\n## Headline: Ceph RGW, what the client controls\n")
    print("Client CPU = the tool's user + sys seconds (the server's CPU is apart, in the full "
          "table). The MD5 floor is one `md5sum` pass over the same bytes. A blank cell: the "
          "tool has no such command.\n")
    md5_w3, md5_w1 = floor.get(("md5", "w3")), floor.get(("md5", "w1"))
    measures = [
        ("client CPU per file, W2 (4 KiB files), ms", "W2 small files",
         lambda r: f"{1000 * r['cpu'] / r['n']:.3f}"),
        ("client CPU per GB, W3 (1 GiB files), s", "W3 large files",
         lambda r: f"{r['cpu'] / (r['n'] / 1e9):.2f}"),
        ("… as a multiple of the MD5 floor", "W3 large files",
         lambda r: f"{r['cpu'] / md5_w3:.2f}×" if md5_w3 else ""),
        ("client CPU, W1 registry mix, s", "W1 registry mix",
         lambda r: f"{r['cpu']:.1f}"),
        ("wall, W2 at 5 ms RTT, s", "W2 small files, 5 ms RTT", lambda r: f"{r['wall']:.1f}"),
        ("wall, W3 at 5 ms RTT, s", "W3 large files, 5 ms RTT", lambda r: f"{r['wall']:.1f}"),
        ("wall, W1 registry mix, s", "W1 registry mix", lambda r: f"{r['wall']:.1f}"),
        ("wall, W4 no-op rerun of W2, s", "W4 no-op rerun", lambda r: f"{r['wall']:.2f}"),
        ("wall, W5 check --one-way of W1, s", "W5 check W1", lambda r: f"{r['wall']:.1f}"),
        ("peak RSS, W1, MiB", "W1 registry mix", lambda r: f"{r['rss']:.0f}"),
        ("wall, W7 bucket → directory (W3), s", "W7 bucket to directory",
         lambda r: f"{r['wall']:.1f}"),
        ("… until on disk (the tool, then `sync`), s", "W7 bucket to directory, then sync",
         lambda r: f"{r['wall']:.1f}"),
        ("client CPU, W7 bucket → directory, s", "W7 bucket to directory",
         lambda r: f"{r['cpu']:.2f}"),
        ("wall, W7 bucket → bucket, one endpoint, s", "W7 bucket to bucket, one endpoint",
         lambda r: f"{r['wall']:.1f}"),
        ("wall, W7 RGW → s3s-fs, s", "W7 bucket to bucket, RGW to s3s-fs",
         lambda r: f"{r['wall']:.1f}"),
        ("client CPU, W7 RGW → s3s-fs, s", "W7 bucket to bucket, RGW to s3s-fs",
         lambda r: f"{r['cpu']:.2f}"),
    ]
    print("| measure | " + " | ".join(TOOLS) + " |")
    print("|---|" + "---:|" * len(TOOLS))
    for label, w, cell in measures:
        cells = []
        for tool in TOOLS:
            r = row(w, tool) or (row(w, "rclone check") if tool == "rclone" else None)
            if r is None:
                cells.append("")
            elif r["rc"] != 0 and r["tool"] != "rclone check":
                cells.append(f"{cell(r)} (exit {r['rc']})")
            else:
                cells.append(cell(r))
        if any(cells):  # a partial run (BENCH_ONLY) leaves some measures without rows
            print(f"| {label} | " + " | ".join(cells) + " |")
    s3 = row("W3 large files", "s3ferry")
    if s3 and md5_w3:
        ratio = s3["cpu"] / md5_w3
        print(f"\nCPU per verified byte: s3ferry's client CPU for W3 is {s3['cpu']:.2f} s against "
              f"{md5_w3:.2f} s for one `md5sum` pass over the same {s3['n'] / 1e9:.2f} GB: "
              f"{ratio:.2f}× (target ≤ 0.80×: {'met' if ratio <= 0.8 else 'NOT met'}).")
    for w in ("W2 small files, 5 ms RTT", "W3 large files, 5 ms RTT"):
        s, base, fast = row(w, "s3ferry"), row(w, "rclone"), row(w, "rclone --transfers 64")
        if s and base and fast:
            print(f"\n{w}: rclone's wall time over s3ferry's is {base['wall'] / s['wall']:.2f} "
                  f"(defaults) and {fast['wall'] / s['wall']:.2f} (--transfers 64).")

    # --- every run ---------------------------------------------------------------------------
    print("\n## Every run\n")
    print("Client CPU = user + sys seconds; wall time; rate in MB/s (bytes) or files/s; server CPU "
          "= the S3 server's user + sys seconds during the run (every Ceph daemon for RGW), plus "
          "the latency proxy's in the 5 ms rows; busy = (client + server CPU) over "
          f"({cpus} CPUs × wall), near 100% when the machine's CPUs are the bound. "
          "`× rclone`: rclone's (defaults) wall time over this tool's; "
          "`× best peer`: the fastest other tool's wall time over s3ferry's. A failed run is "
          "marked.\n")
    print("| workload | server | tool | client CPU s | wall s | rate | server CPU s | busy | "
          "peak RSS MiB | × rclone | × best peer |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w, rs in rows.items():
        base = next((r for r in rs if r["tool"] in ("rclone", "rclone check")), None)
        peers = [r for r in rs if r["tool"] != "s3ferry" and r["rc"] == 0]
        best = min(peers, key=lambda r: r["wall"]) if peers else None
        for r in rs:
            rate = (f"{r['n'] / 1e6 / r['wall']:.0f} MB/s" if r["unit"] == "B"
                    else f"{r['n'] / r['wall']:.0f} files/s")
            vs_rclone = f"{base['wall'] / r['wall']:.2f}" if base and r is not base else ""
            vs_best = (f"{best['wall'] / r['wall']:.2f} (vs {best['tool']})"
                       if best and r["tool"] == "s3ferry" else "")
            tool = r["tool"] + ("" if r["rc"] == 0 else f" (exit {r['rc']})")
            busy = (r["cpu"] + r["server"]) / (cpus * r["wall"])
            print(f"| {w} | {SERVERS.get(r['remote'], r['remote'])} | {tool} | {r['cpu']:.2f} | "
                  f"{r['wall']:.2f} | {rate} | {r['server']:.2f} | {busy:.0%} | {r['rss']:.0f} | "
                  f"{vs_rclone} | {vs_best} |")

    # --- scale -------------------------------------------------------------------------------
    scale_rows = [(w.split()[0], w.split()[1], r) for w, rs in rows.items()
                  if w.split()[0] in SCALE for r in rs]
    if scale_rows:
        print("\n## Scale: a registry of 100k to 1M files\n")
        print("A registry in the distribution layout (`gen.py reg-N`: about 40% blobs of a few "
              "KB, the rest 71-byte links), synced into an empty bucket, synced again with "
              "nothing to do, and checked one way; each tool in a bucket of its own. Time per "
              "1,000 files should stay flat as the registry grows, and peak RSS should not grow "
              "with it. rclone and s3sync run 64 transfers (`--transfers 64 --checkers 64`, "
              "`--worker-size 64`), their best on small files; only s3ferry and rclone have a "
              "check.\n")
        print("| files | server | tool | phase | wall s | s per 1,000 files | client CPU s | "
              "peak RSS MiB | exit |")
        print("|---:|---|---|---|---:|---:|---:|---:|---:|")
        order = {"sync": 0, "rerun": 1, "check": 2}
        for size, phase, r in sorted(scale_rows, key=lambda t: (
                SCALE[t[0]], t[2]["remote"], TOOLS.index(t[2]["tool"]) if t[2]["tool"] in TOOLS
                else 99, order.get(t[1], 9))):
            print(f"| {r['n']:.0f} | {SERVERS.get(r['remote'], r['remote'])} | {r['tool']} | "
                  f"{phase} | {r['wall']:.1f} | {1000 * r['wall'] / r['n']:.2f} | "
                  f"{r['cpu']:.1f} | {r['rss']:.0f} | {r['rc']} |")

    # --- checksums ---------------------------------------------------------------------------
    w3c = [(w, rs[0]) for w, rs in rows.items() if w.startswith("W3C") and rs]
    if w3c:
        print("\n## S3 checksums (W3C)\n")
        print("s3ferry syncing W3 with each `--s3-checksum` beside Content-MD5 (RGW ignores the "
              "checksums, so the server's work is the same in every row): client CPU per GB "
              "and as a multiple of one `md5sum` pass over the same bytes.\n")
        print("| --s3-checksum | client CPU s | per GB, s | × MD5 floor | wall s |")
        print("|---|---:|---:|---:|---:|")
        for w, r in w3c:
            mode = w.rsplit(" ", 1)[-1]
            floor_x = f"{r['cpu'] / md5_w3:.2f}×" if md5_w3 else ""
            print(f"| {mode} | {r['cpu']:.2f} | {r['cpu'] / (r['n'] / 1e9):.2f} | {floor_x} | "
                  f"{r['wall']:.2f} |")

    # --- floors and bounds -------------------------------------------------------------------
    print("\n## MD5 floor, memory bound, SHA-256\n")
    print("The MD5 floor: coreutils `md5sum` CPU seconds over the same bytes, and each tool's "
          "client CPU as a multiple of it:\n")
    for w, md5 in (("W1 registry mix", md5_w1), ("W3 large files", md5_w3),
                   ("W3 large files (s3s-fs)", md5_w3)):
        if not md5 or w not in rows:
            continue
        parts = [f"- {w}: floor {md5:.2f} s"]
        for tool in TOOLS:
            r = row(w, tool)
            if r:
                parts.append(f"{tool} {r['cpu']:.2f} s ({r['cpu'] / md5:.2f}×)")
        print("; ".join(parts))
    w6 = next((r for w, rs in rows.items() if w.startswith("W6") for r in rs
               if r["tool"] == "s3ferry"), None)
    if w6:
        print(f"\nMemory bound: W6 ({w6['units']}) peaked at {w6['rss']:.0f} MiB with a 64 MiB "
              f"buffer budget; the target is at most budget + 64 MiB = 128 MiB "
              f"({'met' if w6['rss'] <= 128 else 'NOT met'}).")
    sha = floor.get(("sha256", "w1"))
    s = row("W1 registry mix", "s3ferry")
    if sha and s and md5_w1:
        both = sha + md5_w1
        print(f"\nIn registry mode s3ferry also proves each blob's SHA-256 (the other tools do "
              f"not): SHA-256 of the W1 blobs takes {sha:.2f} CPU s (OpenSSL), so MD5 + SHA-256 "
              f"is {both:.2f} s and s3ferry's W1 client CPU is {s['cpu'] / both:.2f}× that.")


if __name__ == "__main__":
    main()
