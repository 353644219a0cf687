#!/usr/bin/env python3
"""report.py RUN_DIR MD_OUT PLOT_DIR: the tables of `make bench-kernel` from a guest run
(tests/bench/kernel/guest.sh wrote RUN_DIR/runs.tsv, events.tsv, setup.txt, stap/, bpf/, probes/;
run-guest.sh wrote times; the make target wrote host.txt).

Ratios: every configuration block is compared with the no-module blocks right before and right
after it in the same boot. ratio = median(config runs) / median(those baseline runs); the spread
shown is (min .. max of the config runs) / that same baseline median. The line "no probes" is the
same computation for each inner baseline block against its two neighbours: how far apart two
identical set-ups land on this machine, i.e. the noise floor of every other ratio.

Writes MD_OUT (Markdown) and PLOT_DIR/{bulk,rr,udp}.dat for plot.gp. Exit 1 if RUN_DIR has no
runs at all; a missing configuration is shown as such.
"""
import csv
import glob
import os
import re
import statistics
import sys

WORKLOADS = [
    ("bulk", "bulk TCP", "MB/s", 1e-6),
    ("rr", "64-byte TCP RR", "round trips/s", 1),
    ("udp", "64-byte UDP", "datagrams/s", 1),
]


def read_runs(path):
    blocks = {}  # block -> dict(kind, config, values{workload: [..]}, failed)
    with open(path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            b = int(row["block"])
            blk = blocks.setdefault(b, {"kind": row["kind"], "config": row["config"],
                                        "values": {w[0]: [] for w in WORKLOADS}, "failed": 0,
                                        "sent": {w[0]: [] for w in WORKLOADS}})
            if row["value"] == "FAIL":
                blk["failed"] += 1
                continue
            blk["values"][row["workload"]].append(float(row["value"]))
            if row.get("sent", "-") not in ("-", "", None):
                blk["sent"][row["workload"]].append(float(row["sent"]))
    return blocks


def neighbours(blocks, b):
    """Baseline blocks adjacent to block b (the nearest before and after)."""
    before = [k for k in blocks if k < b and blocks[k]["kind"] == "base"]
    after = [k for k in blocks if k > b and blocks[k]["kind"] == "base"]
    out = []
    if before:
        out.append(max(before))
    if after:
        out.append(min(after))
    return out


def ratio(blocks, b, w):
    vals = blocks[b]["values"][w]
    base = [v for k in neighbours(blocks, b) for v in blocks[k]["values"][w]]
    if not vals or not base:
        return None
    m = statistics.median(base)
    if m <= 0:
        return None
    return (statistics.median(vals) / m, min(vals) / m, max(vals) / m, len(vals), len(base))


def fmt(r):
    if r is None:
        return "n/a"
    return "%.2f (%.2f–%.2f)" % r[:3]


def last_batch_health(path):
    """probes_skipped and handler_errors of the last batch a module printed."""
    skipped = errors = None
    try:
        for line in open(path, errors="replace"):
            p = line.split()
            if len(p) == 5 and p[0] == "derive" and p[2] == "stap_module":
                if p[3] == "probes_skipped":
                    skipped = int(p[4])
                elif p[3] == "handler_errors":
                    errors = int(p[4])
    except OSError:
        pass
    return skipped, errors


def bpf_hits(paths):
    """Probe hits bpftrace counted, over its output files (one per bpftrace process)."""
    total = 0
    per = {}
    if not paths:
        return None, {}
    for path in paths:
        for line in open(path, errors="replace"):
            m = re.match(r'^@(\w+)\[([^\]]+)\]:\s*(\d+)', line)
            if m:
                total += int(m.group(3))
                per[m.group(2)] = per.get(m.group(2), 0) + int(m.group(3))
    return total, per


TIMING = re.compile(r'^(.*?), \((.*?)\), hits: (\d+), cycles: (\d+)min/(\d+)avg/(\d+)max')


def handler_timing(path):
    """[(probe point, hits, fastest, mean)] from a -DSTP_TIMING module's report at unload
    (begin/end/error probes left out: they run once)."""
    rows = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = TIMING.match(line)
                if not m:
                    continue
                pp = re.sub(r'@[^")]*', "", m.group(1))
                if re.match(r'^(begin|end|error)\b', pp):
                    continue
                rows.append((pp, int(m.group(3)), int(m.group(4)), int(m.group(5))))
    except OSError:
        pass
    return rows


def timing_section(run, groups):
    """The handler cost table, if the modules were -DSTP_TIMING builds; else []."""
    L = []
    for g in groups:
        for cfg, label_ in ((g, "alone"), ("all", "with all")):
            for pp, hits, lo, avg in handler_timing(os.path.join(run, "stap", "%s.%s.out" % (cfg, g))):
                L.append("| %s | %s | `%s` | {:,} | {:,} | {:,} |".format(hits, lo, avg) % (g, label_, pp))
    if not L:
        return []
    return ["## Handler cost (STP_TIMING)", "",
            "Modules built with `-DSTP_TIMING` (`BENCH_KERNEL_TIMING=1`): cycles (the guest's TSC) "
            "each probe handler took from SystemTap's entry to its exit, reported by the module when it "
            "stopped; the kprobe or tracepoint dispatch before it is not included. The fastest hit is "
            "the handler's own cost; the mean also carries interrupts and emulation stalls. The timing "
            "itself adds a little to every hit, so this run's throughput ratios are not the plain "
            "modules'.", "",
            "| group | loaded | probe point | hits | fastest | mean |", "|---|---|---|---|---|---|"] + L + [""]


# The configurations that load every group, in report order: this build's, and another build's
# ("all@other", BENCH_KERNEL_COMPARE).
WHOLE = ("all", "all@other")


def is_all(cfg):
    return cfg in WHOLE


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: report.py RUN_DIR MD_OUT PLOT_DIR")
    run, md_out, plot_dir = sys.argv[1:]
    runs = os.path.join(run, "runs.tsv")
    if not os.path.exists(runs):
        sys.exit("report.py: %s missing: the guest did not run (see %s/console.log)" % (runs, run))
    blocks = read_runs(runs)
    if not blocks:
        sys.exit("report.py: no runs in %s" % runs)

    # Configurations in run order (groups first, "all" last).
    configs = []
    for b in sorted(blocks):
        c = blocks[b]["config"]
        if blocks[b]["kind"] != "base" and c not in configs:
            configs.append(c)
    for whole in WHOLE:
        if whole in configs:
            configs.remove(whole)
            configs.append(whole)
    groups = [c for c in configs if not is_all(c)]
    # Variants (GROUP+param=value: one group's module with parameters) are not more groups.
    ngroups = len([g for g in groups if "+" not in g])

    def block_of(kind, cfg):
        for b in sorted(blocks):
            if blocks[b]["kind"] == kind and blocks[b]["config"] == cfg:
                return b
        return None

    def cell(kind, cfg, w):
        b = block_of(kind, cfg)
        if b is None:
            return None
        return ratio(blocks, b, w)

    def label(cfg):
        # With BENCH_KERNEL_ALONE=0 no group ran alone: count the groups the guest was given.
        n = ngroups or len([g for g in params.get("groups", "").split(",") if g and "+" not in g])
        if cfg == "all@other":
            return "all %d groups, other build (%s)" % (n, params.get("compare", "?"))
        return "all %d groups" % n if cfg == "all" else cfg

    # Noise floor: inner baseline blocks against their neighbours.
    base_blocks = [b for b in sorted(blocks) if blocks[b]["kind"] == "base"]
    noise = {}
    for w, *_ in WORKLOADS:
        rs = []
        for i in range(1, len(base_blocks) - 1):
            b = base_blocks[i]
            vals = blocks[b]["values"][w]
            nb = blocks[base_blocks[i - 1]]["values"][w] + blocks[base_blocks[i + 1]]["values"][w]
            if vals and nb:
                rs.append(statistics.median(vals) / statistics.median(nb))
        if len(rs) >= 4:
            q = statistics.quantiles(rs, n=4)
            noise[w] = (statistics.median(rs), q[0], q[2], min(rs), max(rs))
        elif rs:
            noise[w] = (statistics.median(rs), min(rs), max(rs), min(rs), max(rs))
        else:
            noise[w] = None

    def readf(name):
        try:
            return open(os.path.join(run, name)).read()
        except OSError:
            return ""

    setup = readf("setup.txt")
    host = readf("host.txt")
    times = dict(l.split(None, 1) for l in readf("times").splitlines() if " " in l)
    pline = re.search(r'^duration=.*$', setup, re.M)
    params = dict(re.findall(r'(\w+)=(\S+)', pline.group(0) if pline else ""))

    L = []
    L.append("# Probe overhead: collectd-stap modules vs bpftrace on the same probe points")
    L.append("")
    L.append("`make bench-kernel`: one VM boot (qemu TCG, Debian kernel %s, %s vCPUs). "
             "Throughput with probes on, as a ratio of the no-module runs right before and after "
             "in the same boot: **median (min–max of the runs)**; 1.00 = no cost. "
             "Module = the group's SystemTap module loaded with `staprun MODULE.ko interval_ms=10000` "
             "(defaults); bpftrace = `@[probe] = count()` on the same probe points "
             "(tests/bench/kernel/probes.py)."
             % (re.search(r'kernel: (\S+)', setup).group(1) if "kernel:" in setup else "?",
                re.search(r'vCPUs: (\S+)', setup).group(1) if "vCPUs:" in setup else "?"))
    L.append("")
    hdr = "| probes on |"
    sep = "|---|"
    for w, name, *_ in WORKLOADS:
        hdr += " %s: module | %s: bpftrace |" % (name, name)
        sep += "---|---|"
    L.append(hdr)
    L.append(sep)
    for cfg in configs:
        row = "| %s |" % label(cfg)
        for w, *_ in WORKLOADS:
            row += " %s | %s |" % (fmt(cell("stap", cfg, w)), fmt(cell("bpf", cfg, w)))
        L.append(row)
    row = "| no probes: each baseline block vs its neighbours (the noise floor) |"
    for w, *_ in WORKLOADS:
        n = noise[w]
        row += " %s | |" % ("n/a" if n is None else "%.2f (IQR %.2f–%.2f; all %.2f–%.2f)" % n)
    L.append(row)
    L.append("")
    L.append("Read a ratio against the noise floor: the baseline blocks of this boot, each taken as if it "
             "were a configuration, land that far from 1.00 with nothing loaded (IQR: the middle half of "
             "them). Ratios inside it are not distinguishable from no cost on this run.")
    L.append("")

    # Absolute baseline figures.
    L.append("Baseline (no probes), all %d baseline blocks of the boot:" % len(base_blocks))
    L.append("")
    L.append("| workload | median | min–max | runs |")
    L.append("|---|---|---|---|")
    for w, name, unit, scale in WORKLOADS:
        vals = [v for b in base_blocks for v in blocks[b]["values"][w]]
        if vals:
            L.append("| %s | %.4g %s | %.4g–%.4g | %d |" % (
                name, statistics.median(vals) * scale, unit, min(vals) * scale, max(vals) * scale, len(vals)))
    sent = [v for b in base_blocks for v in blocks[b]["sent"]["udp"]]
    got = [v for b in base_blocks for v in blocks[b]["values"]["udp"]]
    if sent and got:
        L.append("")
        L.append("UDP: the sender sent a median %.4g datagrams/s, the receiver got %.4g/s." % (
            statistics.median(sent), statistics.median(got)))
    L.append("")

    # How it was run.
    L.append("## How it was measured")
    L.append("")
    ncpu = re.search(r'vCPUs: (\S+)', setup).group(1) if "vCPUs:" in setup else "?"
    L.append("- Path: %s. Client: %s." % (
        re.search(r'path: (.*)', setup).group(1) if "path:" in setup else "?",
        re.search(r'client: (.*)', setup).group(1) if "client:" in setup else "?"))
    L.append("- %s vCPUs: one per host core (this machine has %s), so the two ends of bulk and UDP each "
             "have a vCPU thread that the host can run at the same time as the other; more vCPUs than "
             "host cores would add host scheduling delays to every wake-up between them. staprun/stapio "
             "and bpftrace are not pinned (they sleep while the probes count)." % (ncpu, os.cpu_count()))
    if "rr_cpu=same" in setup:
        L.append("- RR runs with both ends on vCPU 0: across vCPUs each round trip waits for the host to "
                 "wake two halted vCPU threads, and on this shared host that alone swung the rate tenfold "
                 "(130-300/s with other VMs running, 1700-2100/s without), whatever the probes cost; on one "
                 "vCPU a round trip is two guest context switches (2200-2900/s in the same conditions), so "
                 "the ratio measures the probes' CPU cost per round trip.")
    L.append("- Workloads (tests/bench/kernel/netbench.c): bulk = 64 KiB TCP writes (bytes/s); "
             "RR = one 64-byte request and 64-byte answer per round trip, TCP_NODELAY; "
             "UDP = 64-byte datagrams, rate counted by the receiver.")
    L.append("- Each run: %s s warm-up, then %s s measured. A configuration block: %s repetitions of "
             "(bulk, RR, UDP); a baseline block: %s repetitions, before the first configuration "
             "and after every one. Order: per group, module then bpftrace; then all groups' "
             "modules together, then bpftrace on every group's probes (one bpftrace per set of groups that "
             "share no probe point: bpftrace 0.17 does not load a script naming a tracepoint twice, and "
             "the modules attach such a point once each)."
             % (params.get("warmup", "?"), params.get("duration", "?"),
                params.get("reps", "?"), params.get("base_reps", "?")))
    if params.get("compare"):
        L.append("- \"all@other\": every group's module from another build for this kernel (%s), "
                 "loaded the same way right after this build's, a baseline block between them: the "
                 "two builds' cost side by side in one boot." % params["compare"])
    if params.get("alone") == "0":
        L.append("- Groups alone were skipped (`BENCH_KERNEL_ALONE=0`).")
    if times:
        L.append("- VM time: %s s wall (boot %s s, benchmark %s s)." % (
            times.get("wall", "?").strip(), times.get("boot_to_script", "?").strip(),
            times.get("script", "?").strip()))
    if host.strip():
        L.append("- Host: " + "; ".join(l.strip() for l in host.splitlines() if l.strip()) + ".")
    samples = [(float(a), float(b)) for a, b in
               (l.split() for l in readf("host-load.txt").splitlines() if len(l.split()) == 2)]
    if samples and "wall" in times:
        # Only while the VM ran (not while run-guest.sh waited for another VM to finish).
        t_end = samples[-1][0]
        samples = [x for x in samples if x[0] >= t_end - float(times["wall"])]
    loads = [b for _, b in samples]
    if loads:
        L.append("- Host load average (1 min) while the VM ran, sampled every 5 s: min %.1f, median %.1f, "
                 "max %.1f on %s cores. Each vCPU is a host thread; when other work takes the host's cores, "
                 "a vCPU waits, and a woken task on it waits with it: RR suffers most." % (
                     min(loads), statistics.median(loads), max(loads), os.cpu_count()))
    L.append("")

    # Health and probe coverage.
    L.append("## Probe points and health")
    L.append("")
    L.append("| group | bpftrace probes (from the module) | not on this kernel | bpftrace hits in its block | module: skipped / handler errors (alone; with all) |")
    L.append("|---|---|---|---|---|")
    for cfg in configs:
        npro = 0
        if not is_all(cfg):
            try:
                npro = sum(1 for _ in open(os.path.join(run, "probes", cfg + ".probes")))
            except OSError:
                npro = 0
        else:
            for g in groups:
                try:
                    npro += sum(1 for _ in open(os.path.join(run, "probes", g + ".probes")))
                except OSError:
                    pass
        miss = []
        try:
            miss = [l.split("\t")[1] for l in open(os.path.join(run, "bpf", cfg + ".missing")) if l.strip()]
        except OSError:
            pass
        hits, _ = bpf_hits(sorted(glob.glob(os.path.join(run, "bpf", cfg + ".[0-9]*.out"))))
        if not is_all(cfg):
            s1 = last_batch_health(os.path.join(run, "stap", "%s.%s.out" % (cfg, cfg)))
            s2 = last_batch_health(os.path.join(run, "stap", "all.%s.out" % cfg))
            health = "; ".join("-" if a is None else "%d / %d" % (a, b or 0) for a, b in (s1, s2))
        else:
            health = ""
        L.append("| %s | %d | %s | %s | %s |" % (
            label(cfg), npro, (", ".join(miss) if len(miss) <= 6 else "%d (%s, ...)" % (len(miss), ", ".join(miss[:4]))) or "-",
            "n/a" if hits is None else "{:,}".format(hits), health))
    L.append("")
    L.append("Probe points come from the C that `stap -p3` generated for each module at build time "
             "(build/modules/KVER/.tapset/GROUP/collectd_stap_GROUP.c, its probe table): "
             "`kernel.trace` → `tracepoint:`, `kernel.function`/`kprobe.function` → `kprobe:` "
             "(`.return` → `kretprobe:`); netfilter hooks → a kprobe on the function whose "
             "`NF_HOOK()` runs that hook (BPF netfilter programs need Linux 6.4). The missing ones "
             "are inline-only functions or modules not loaded (bridge).")
    L.append("")

    L += timing_section(run, groups)

    # Broken runs.
    events = readf("events.tsv")
    bad = [l.split("\t", 1)[1] for l in events.splitlines() if "BROKEN" in l]
    failed = sum(blocks[b]["failed"] for b in blocks)
    if bad or failed:
        L.append("## Broken runs")
        L.append("")
        for l in bad:
            L.append("- " + l)
        L.append("")

    os.makedirs(os.path.dirname(md_out) or ".", exist_ok=True)
    with open(md_out, "w") as f:
        f.write("\n".join(L) + "\n")

    os.makedirs(plot_dir, exist_ok=True)
    with open(os.path.join(plot_dir, "noise.gp"), "w") as f:
        f.write("# the noise floor of this run (IQR of baseline blocks vs their neighbours), for plot.gp\n")
        for w, *_ in WORKLOADS:
            n = noise[w] or (1.0, 1.0, 1.0, 1.0, 1.0)
            f.write("noise_lo_%s = %.4f\nnoise_hi_%s = %.4f\n" % (w, n[1], w, n[2]))
    for w, *_ in WORKLOADS:
        with open(os.path.join(plot_dir, w + ".dat"), "w") as f:
            f.write("# config module module_lo module_hi bpftrace bpftrace_lo bpftrace_hi\n")
            for cfg in configs:
                vals = []
                for kind in ("stap", "bpf"):
                    r = cell(kind, cfg, w)
                    vals += ["NaN"] * 3 if r is None else ["%.4f" % x for x in r[:3]]
                f.write('"%s" %s\n' % ("all (other build)" if cfg == "all@other" else cfg, " ".join(vals)))
    print("\n".join(L[:len(configs) + 8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
