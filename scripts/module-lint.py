#!/usr/bin/env python3
"""Module lint: checks the C that `stap -p3` generated for a collectd-stap module.

Usage: module-lint.py [--events FILE] [--name LABEL] GENERATED.c

Rules (modules/PROTOCOL.md, "Module safety"):
  a. lock: every access to a script global (map, statistic or scalar) in a probe handler, and
     every call of a script function that (transitively) touches one, lies inside the handler's
     lock section: after a stp_lock_probe() that runs unconditionally, before stp_unlock_probe().
     (SystemTap 4.8 places the lock inside the first branch that touches a global in handlers
     like `if (pp() ...) { x = 1; next }`, so the rest of the handler runs unlocked.)
  b. exclusive: a probe on a per-event path (a packet, a call, a connection: the patterns of
     modules/event-probes.txt) takes no global's lock for writing: every CPU would serialise on
     it, and a batch being printed would make the others spin and skip.
  c. overflow: every global array is created with wrap-around (`global a%[N]`): a full
     non-wrapping array stops the module with a fatal "Array overflow" (or "aggregation
     overflow" for statistics).
  d. teardown: systemtap_module_exit() releases every kind of probe the module has, each with
     a wait for handlers still running (kprobes: stapkp_exit, tracepoints:
     tracepoint_synchronize_unregister, timers: _stp_hrtimer_delete, procfs: _stp_close_procfs,
     netfilter hooks: nf_unregister_hook), before it runs the first end or error probe. The
     tapset frees its per-CPU counters in its last end/error probe, which is safe only then;
     a probe kind this script does not know is a problem until it is added here.

Exit status: 0 clean, 1 violations (each printed as LABEL: rule: what, where), 2 usage or a
generated file this script does not understand.
"""

import fnmatch
import os
import re
import sys

PROBE_INIT = re.compile(r'STAP_PROBE_INIT\((\d+), &(probe_\d+), "((?:[^"\\]|\\.)*)"')
FUNC_START = re.compile(r'^static void (probe_\d+|function_\w+) \(struct context\s*\*\s*__restrict__ c\) \{$')
GLOBAL_REF = re.compile(r'\bglobal(?:_set|_lock)?\(s___global_(\w+?)\)|\bglobal_set\(s___global_(\w+?),')
FUNC_CALL = re.compile(r'\b(function___global_\w+?__overload_\d+) \(c\);')
LOCK_ENTRY = re.compile(r'\.lock = global_lock\(s___global_(\w+)\),')
WRITE_P = re.compile(r'\.write_p = ([01]),')
SOLO = re.compile(r'^(begin|end|error|never)\b')
PROBE_TABLE = re.compile(r'\b(stap_\w+?)_probes\s*\[[^\]]*\]\s*=\s*\{')
NF_HOOK = re.compile(r'^static struct nf_hook_ops (netfilter_opts_\d+)\b', re.M)
# Probe kind (its table) -> the call in systemtap_module_exit() that releases it and waits.
RELEASES = {
    'stap_kprobe': 'stapkp_exit(',
    'stap_tracepoint': 'tracepoint_synchronize_unregister();',
    'stap_hrtimer': '_stp_hrtimer_delete(',
    'stap_procfs': '_stp_close_procfs();',
}
MAP_NEW = re.compile(r'global_set\(s___global_(\w+), (_stp_p?map_new_\w+) \(([^;]*)\)\);')


def unescape(s):
    return s.encode().decode('unicode_escape')


def load_events(path):
    """Returns [(kind, pattern, reason)] with kind 'event' or 'quiet'."""
    rules = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3 or parts[0] not in ('event', 'quiet'):
                sys.exit(f'{path}:{n}: expected "event|quiet PATTERN REASON"')
            rules.append((parts[0], parts[1], parts[2]))
    return rules


def classify(pp, rules):
    for kind, pattern, _ in rules:
        if fnmatch.fnmatchcase(pp, pattern):
            return kind
    return None


def split_functions(lines):
    """{name: [(lineno, text)]} for every probe handler and script function body."""
    funcs = {}
    i = 0
    while i < len(lines):
        m = FUNC_START.match(lines[i])
        if not m:
            i += 1
            continue
        body = []
        i += 1
        while i < len(lines) and lines[i] != '}':
            body.append((i + 1, lines[i]))
            i += 1
        funcs[m.group(1)] = body
    return funcs


def globals_in(text):
    return {a or b for a, b in GLOBAL_REF.findall(text)}


def lock_table(body):
    """The globals in the handler's locks[] declaration: {name: write_p}, and the lines it spans."""
    locks, span, cur, inside = {}, set(), None, False
    for n, text in body:
        if 'static const struct stp_probe_lock locks[] = {' in text:
            inside = True
        if inside:
            span.add(n)
            m = LOCK_ENTRY.search(text)
            if m:
                cur = m.group(1)
            m = WRITE_P.search(text)
            if m and cur:
                locks[cur] = locks.get(cur, False) or m.group(1) == '1'
            if text.strip() == '};':
                inside = False
    return locks, span


def touches_globals(funcs):
    """Names of script functions that access a global themselves or through a callee."""
    direct = {f for f, body in funcs.items() if f.startswith('function_')
              and any(globals_in(t) for _, t in body)}
    calls = {f: {c for _, t in body for c in FUNC_CALL.findall(t)}
             for f, body in funcs.items()}
    result = set(direct)
    changed = True
    while changed:
        changed = False
        for f, callees in calls.items():
            if f.startswith('function_') and f not in result and callees & result:
                result.add(f)
                changed = True
    return result


def check_lock_section(body, lock_lines, dirty_funcs):
    """Rule a for one handler: [(lineno, what)] of accesses the lock does not cover.

    SystemTap 4.8 takes a handler's locks lazily, at the first global access in the text, and
    assumes that point dominates every later access. A lock taken inside a block covers the
    rest of that block only: once the block closes (say, an `if` that ended in `next`), later
    accesses run unlocked. So an access is covered if a lock was taken earlier in the text at a
    brace depth that is still open, and no stp_unlock_probe() came in between.
    """
    depth = 0
    held_at = None      # brace depth at which the held lock was taken
    bad = []
    branch_lock = None
    for n, text in body:
        stripped = text.strip()
        if stripped.startswith('if (c->locked == 0)'):
            held_at = depth
            branch_lock = n if depth > 0 else branch_lock
        elif 'stp_unlock_probe(' in text:
            held_at = None
        # The translator re-evaluates probe conditions after `out:`, reading the condition's
        # scalar without the lock; an aligned 64-bit read, not a map operation.
        bookkeeping = 'cond_enabled' in text
        if n not in lock_lines and held_at is None and not bookkeeping:
            for g in sorted(globals_in(text)):
                bad.append((n, f"global '{g}' accessed outside the lock section"))
            for f in FUNC_CALL.findall(text):
                if f in dirty_funcs:
                    fname = re.sub(r'^function___global_|__overload_\d+$', '', f)
                    bad.append((n, f"function {fname}() touches globals, called outside the lock section"))
        for ch in text:
            if ch == '{':
                depth += 1
            elif ch == '}':
                depth -= 1
                if held_at is not None and depth < held_at:
                    held_at = None
    if bad and branch_lock is not None:
        bad.insert(0, (branch_lock, 'the lock is taken inside a block that does not cover every '
                                    'later access (SystemTap 4.8 lock placement)'))
    return bad


def check_teardown(src):
    """Rule d: what systemtap_module_exit() must have released before its first end probe."""
    start = src.find('static void systemtap_module_exit (void) {')
    if start < 0:
        return ['cannot find systemtap_module_exit()']
    first_end = src.find('enter_be_probe', start)
    if first_end < 0:
        return []  # no end probe: nothing is freed at exit, so no order to check
    before = src[start:first_end]
    bad = []
    for kind in sorted(set(PROBE_TABLE.findall(src)) - {'stap_be'}):
        call = RELEASES.get(kind)
        if call is None:
            bad.append(f'probe kind {kind}: not known to be released (with a wait for its running '
                       'handlers) before the end probes; check the runtime and add it to RELEASES')
        elif call not in before:
            bad.append(f'probe kind {kind}: {call} does not come before the first end probe in '
                       'systemtap_module_exit()')
    for hook in NF_HOOK.findall(src):
        if f'nf_unregister_hook (& {hook});' not in before:
            bad.append(f'netfilter hook {hook}: not unregistered before the first end probe')
    return bad


def main(argv):
    events = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'modules', 'event-probes.txt')
    label = None
    args = []
    it = iter(argv)
    for a in it:
        if a == '--events':
            events = next(it)
        elif a == '--name':
            label = next(it)
        else:
            args.append(a)
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = args[0]
    label = label or os.path.basename(path)
    rules = load_events(events)
    with open(path) as f:
        lines = f.read().split('\n')
    src = '\n'.join(lines)

    pps = {}
    for _, handler, pp in PROBE_INIT.findall(src):
        pps.setdefault(handler, []).append(unescape(pp))
    if not pps:
        print(f'{label}: cannot find the probe table (STAP_PROBE_INIT) in {path}: is it stap -p3 output?',
              file=sys.stderr)
        return 2
    funcs = split_functions(lines)
    dirty = touches_globals(funcs)
    problems = []

    for handler, points in sorted(pps.items()):
        body = funcs.get(handler)
        if body is None:
            print(f'{label}: no body for {handler} in {path}', file=sys.stderr)
            return 2
        where = ', '.join(points)
        locks, lock_lines = lock_table(body)
        # begin, end and error handlers run while no other probe is armed (SystemTap registers
        # the event probes after the begin probes and removes them before end and error), so
        # the translator gives them no lock at all; rule a is about the handlers that race.
        lone = all(SOLO.match(p) for p in points)
        for n, what in ([] if lone else check_lock_section(body, lock_lines, dirty)):
            problems.append(f'{label}: lock: {what} in probe {where} ({path}:{n})')
        kinds = {p: classify(p, rules) for p in points}
        for p, k in kinds.items():
            if k is None:
                problems.append(f'{label}: unclassified probe point {p}: add a pattern to {events} '
                                '(event = runs per packet, call or connection; quiet = timer, begin, end, procfs)')
        writes = sorted(g for g, w in locks.items() if w)
        event_points = [p for p, k in kinds.items() if k == 'event']
        if writes and event_points:
            problems.append(f"{label}: exclusive: probe {', '.join(event_points)} takes the write lock of "
                            f"{', '.join(writes)} on a per-event path (keep per-event state in "
                            "statistics or the tapset's stamp table; write maps in the timer)")

    for name, fn, args_text in MAP_NEW.findall(src):
        if 'KEY_STAT_WRAP' not in args_text:
            size = re.search(r'KEY_MAPENTRIES, (\d+)', args_text)
            problems.append(f"{label}: overflow: global array '{name}'"
                            f"{'[' + size.group(1) + ']' if size else ''} does not wrap: when full it stops the "
                            f"module with a fatal error; declare it as {name}%[N]")

    for what in check_teardown(src):
        problems.append(f"{label}: teardown: {what} (the tapset frees its per-CPU counters in "
                        "its last end probe)")

    for p in problems:
        print(p)
    if problems:
        print(f'{label}: {len(problems)} problem(s)')
        return 1
    print(f'{label}: lint ok ({len(pps)} probe handlers, {len(funcs)} functions)')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
