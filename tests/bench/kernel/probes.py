#!/usr/bin/env python3
"""probes.py MODULES_DIR OUT_DIR GROUP...: the bpftrace probe points of each group, for the
reference runs of `make bench-kernel` (tests/bench/kernel/guest.sh).

Where they come from: `make modules` (scripts/build-modules.sh, lint step) keeps the C that
`stap -p3` generated for each module in MODULES_DIR/.tapset/GROUP/collectd_stap_GROUP.c. Its probe
table (one STAP_PROBE_INIT(...) per probe point, with the point as the translator resolved it:
wildcards expanded, `?` points that did not resolve dropped, `!` alternatives reduced to the one
that resolved) is exactly what the module registers. Nothing here copies a probe point by hand,
except the netfilter table below (bpftrace on Linux 6.1 cannot register a netfilter hook).

Mapping to bpftrace:
  kernel.trace("SYS:NAME")                 -> tracepoint:SYS:NAME
  kernel.function("F@file:line")[.call]    -> kprobe:F
  kprobe.function("F")                     -> kprobe:F
  ... .return[.maxactive(N)]               -> kretprobe:F
  netfilter.hook("H").pf("P")              -> kprobe on the kernel function whose NF_HOOK()
                                              runs hook H of family P (NETFILTER_SITES): the
                                              same once-per-packet frequency, without a hook;
                                              BPF netfilter programs need Linux 6.4
  timer.*, begin*, end*, error*, procfs(*) -> none (not on the event path)
Anything else is an error, so a new kind of probe point cannot be left out silently.

Writes OUT_DIR/GROUP.probes: one line per distinct bpftrace probe, "PROBE<TAB>module's point".
The guest keeps those its kernel has (tracefs events, available_filter_functions).
"""
import os
import re
import sys

# Where each netfilter hook runs in Linux 6.1 (the function calling NF_HOOK/NF_HOOK_COND/
# nf_hook for it). IPv4: net/ipv4/ip_input.c, ip_forward.c, ip_output.c; IPv6: net/ipv6/
# ip6_input.c, ip6_forward.c, ip6_output.c, output_core.c; ARP: net/ipv4/arp.c; bridge:
# net/bridge/br_input.c, br_forward.c (a module: its functions exist only once it is loaded).
NETFILTER_SITES = {
    ("NFPROTO_IPV4", "NF_INET_PRE_ROUTING"): ["ip_rcv", "ip_list_rcv"],
    ("NFPROTO_IPV4", "NF_INET_LOCAL_IN"): ["ip_local_deliver"],
    ("NFPROTO_IPV4", "NF_INET_FORWARD"): ["ip_forward"],
    ("NFPROTO_IPV4", "NF_INET_LOCAL_OUT"): ["__ip_local_out"],
    ("NFPROTO_IPV4", "NF_INET_POST_ROUTING"): ["ip_output", "ip_mc_output"],
    ("NFPROTO_IPV6", "NF_IP6_PRE_ROUTING"): ["ipv6_rcv", "ipv6_list_rcv"],
    ("NFPROTO_IPV6", "NF_IP6_LOCAL_IN"): ["ip6_input"],
    ("NFPROTO_IPV6", "NF_IP6_FORWARD"): ["ip6_forward"],
    ("NFPROTO_IPV6", "NF_IP6_LOCAL_OUT"): ["__ip6_local_out"],
    ("NFPROTO_IPV6", "NF_IP6_POST_ROUTING"): ["ip6_output"],
    ("NFPROTO_ARP", "NF_ARP_IN"): ["arp_rcv"],
    ("NFPROTO_ARP", "NF_ARP_OUT"): ["arp_xmit"],
    ("NFPROTO_ARP", "NF_ARP_FORWARD"): [],  # only br_netfilter's arptables path
    ("NFPROTO_BRIDGE", "NF_BR_PRE_ROUTING"): ["br_handle_frame"],
    ("NFPROTO_BRIDGE", "NF_BR_LOCAL_IN"): ["br_pass_frame_up"],
    ("NFPROTO_BRIDGE", "NF_BR_FORWARD"): ["__br_forward"],
    ("NFPROTO_BRIDGE", "NF_BR_LOCAL_OUT"): ["br_dev_queue_push_xmit"],
    ("NFPROTO_BRIDGE", "NF_BR_POST_ROUTING"): ["br_forward_finish"],
}

INIT = re.compile(r'STAP_PROBE_INIT\(\s*\d+\s*,\s*&\w+\s*,\s*"((?:[^"\\]|\\.)*)"')
QUIET = re.compile(r'^(timer\.|begin|end|error|procfs\()')


def unquote(s):
    return re.sub(r'\\(.)', r'\1', s)


def bpftrace_points(pp):
    """The bpftrace probes for one module probe point ([] for a quiet one)."""
    pp = re.sub(r'\s+if\s*\(.*$', '', pp).rstrip('?!')
    if QUIET.match(pp):
        return []
    m = re.match(r'^kernel\.trace\("([^"]+)"\)', pp)
    if m:
        return ["tracepoint:" + m.group(1)]
    m = re.match(r'^(?:kernel|kprobe)\.function\("([A-Za-z0-9_.]+)(?:@[^"]*)?"\)(.*)$', pp)
    if m:
        ret = re.search(r'\.return\b', m.group(2)) is not None
        return [("kretprobe:" if ret else "kprobe:") + m.group(1)]
    m = re.match(r'^netfilter\.hook\("(\w+)"\)\.pf\("(\w+)"\)', pp)
    if m:
        key = (m.group(2), m.group(1))
        if key not in NETFILTER_SITES:
            raise ValueError("netfilter hook %s of %s has no kprobe site in NETFILTER_SITES" % key[::-1])
        return ["kprobe:" + f for f in NETFILTER_SITES[key]]
    raise ValueError("no bpftrace equivalent known for probe point %r" % pp)


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: probes.py MODULES_DIR OUT_DIR GROUP...")
    mdir, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for group in sys.argv[3:]:
        c = os.path.join(mdir, ".tapset", group, "collectd_stap_%s.c" % group)
        try:
            text = open(c, encoding="utf-8", errors="replace").read()
        except OSError as e:
            sys.exit("probes.py: %s: %s (build the module: make modules KVER=...)" % (c, e.strerror))
        seen = {}
        for m in INIT.finditer(text):
            pp = unquote(m.group(1))
            try:
                pts = bpftrace_points(pp)
            except ValueError as e:
                sys.exit("probes.py: %s: %s" % (group, e))
            for p in pts:
                seen.setdefault(p, pp)
        if not seen:
            sys.exit("probes.py: %s: no event probe points found in %s" % (group, c))
        with open(os.path.join(out, group + ".probes"), "w") as f:
            for p, pp in seen.items():
                f.write("%s\t%s\n" % (p, pp))
        print("probes.py: %s: %d bpftrace probes from %s" % (group, len(seen), os.path.relpath(c)))


if __name__ == "__main__":
    main()
