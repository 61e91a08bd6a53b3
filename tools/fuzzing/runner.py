"""The fuzzer's processes: the parent starts a worker child, watches its progress
through a state file, and reports a crash or a hang with the case that was
running, then carries on with a fresh child; the worker draws the cases with
hypothesis and runs them (check.py). --replay runs one spec in this process."""
import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

# The child is started through the documented entry point.
ENTRY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz.py")
STARTUP_S = 60  # a busy machine can take seconds to import hypothesis and roipool
REPLAY = "      replay: python tools/fuzz.py --replay '"
FUNCTIONS = {"fwd": "roi_pooling", "bwd": "roi_pooling_backward", "afwd": "roi_align",
             "abwd": "roi_align_backward"}


def signature(spec, problems):
    """A failure's kind: its first problem with the numbers blanked out."""
    p = re.sub(r"-?\d+(\.\d+)?(e[+-]?\d+)?", "#", problems[0])
    p = re.sub(r"\(row = .*", "", p)[:120]
    return f"{spec['op']}: {p}"


def worker(args):
    if args.mem_limit and not os.environ.get("ROIPOOL_SANITIZED"):
        import resource
        lim = int(args.mem_limit * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    import hypothesis
    from hypothesis import HealthCheck, Phase, given, settings

    import roipool

    from .check import run_case
    from .strategies import spec_strategy

    if args.self_test == "corrupt":
        real = roipool.roi_pooling

        def corrupt(*a, **k):
            res = real(*a, **k)
            out = res[0] if isinstance(res, tuple) else res
            if isinstance(out, np.ndarray) and out.size and out.flags.writeable:
                out.flat[out.size // 2] = 424242
            return res
        roipool.roi_pooling = corrupt

    counts = collections.Counter()
    ops = collections.Counter()
    state_path, fail_path = args.state, args.failures
    done = [0]

    def save_state(spec):
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"i": done[0], "counts": counts, "ops": ops, "spec": spec}, f)
        os.replace(tmp, state_path)

    @hypothesis.seed(args.seed)
    @settings(max_examples=args.cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(spec_strategy())
    def fuzz(spec):
        if done[0] >= args.cases:
            return
        save_state(spec)
        if args.self_test == "crash" and done[0] == args.cases // 2:
            os.abort()
        if args.self_test == "hang" and done[0] == args.cases // 2:
            time.sleep(3600)
        outcome, problems = run_case(spec, roipool)
        done[0] += 1
        counts[outcome] += 1
        if outcome != "skip":
            ops[spec["op"]] += 1
        if problems:
            counts["FAIL"] += 1
            with open(fail_path, "a") as f:
                f.write(json.dumps({"spec": spec, "outcome": outcome, "problems": problems}) + "\n")

    rounds = 0
    while done[0] < args.cases and rounds < 50:
        fuzz()
        rounds += 1
        args.seed += 7919  # hypothesis may stop early; continue with another seed
    save_state(None)
    return 0


def parent(args):
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="roipool-fuzz-")
    state = os.path.join(tmp, "state.json")
    failures = os.path.join(tmp, "failures.jsonl")
    totals = collections.Counter()
    ops = collections.Counter()
    crashes = []
    remaining = args.cases
    seed = args.seed
    restarts = 0
    while remaining > 0:
        if os.path.exists(state):
            os.remove(state)
        cmd = [sys.executable, ENTRY, "--worker", "--cases", str(remaining),
               "--seed", str(seed), "--state", state, "--failures", failures,
               "--mem-limit", str(args.mem_limit)]
        if args.self_test and restarts == 0:
            cmd += ["--self-test", args.self_test]
        env = dict(os.environ)
        env.setdefault("PYTHONFAULTHANDLER", "1")
        errlog = os.path.join(tmp, f"stderr.{restarts}")
        with open(errlog, "wb") as ef:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=ef, env=env)
            last_change, last_i = time.time(), -1
            hung = False
            while proc.poll() is None:
                time.sleep(0.2)
                st = _read_state(state)
                i = st["i"] if st else -1
                if st and (i != last_i or st.get("spec") is None):
                    last_i, last_change = i, time.time()
                # a child still starting (imports, first draw) gets STARTUP_S
                limit = args.hang if st else max(args.hang, STARTUP_S)
                if time.time() - last_change > limit:
                    hung = True
                    proc.kill()
                    proc.wait()
                if time.time() - t0 > args.timeout:
                    proc.kill()
                    proc.wait()
                    print(f"fuzz: total time limit of {args.timeout} s reached", file=sys.stderr)
                    remaining = 0
                    break
        st = _read_state(state) or {"i": 0, "counts": {}, "ops": {}, "spec": None}
        totals.update(st["counts"])
        ops.update(st["ops"])
        done = st["i"]
        if proc.returncode == 0 and st.get("spec") is None:
            remaining -= done
            if done == 0:
                break
            continue
        if remaining == 0:
            break
        # crash or hang: the spec in the state file is the case that was running
        with open(errlog, "rb") as ef:
            raw = ef.read()
        tail = (raw[:3000] + b"\n...\n" + raw[-4000:] if len(raw) > 7000 else raw).decode("utf-8", "replace")
        rc = proc.returncode
        how = "hang (no progress for %d s)" % limit if hung else (
            f"killed by signal {-rc} ({signal.Signals(-rc).name})" if rc < 0 else f"exit status {rc}")
        crashes.append({"how": how, "spec": st.get("spec"), "stderr": tail})
        totals["CRASH" if not hung else "HANG"] += 1
        remaining -= done + 1
        seed += 1000003
        restarts += 1
        if len(crashes) >= args.max_crashes:
            print(f"fuzz: stopping after {len(crashes)} crashes", file=sys.stderr)
            break
    elapsed = time.time() - t0
    fails = []
    if os.path.exists(failures):
        with open(failures) as f:
            fails = [json.loads(line) for line in f if line.strip()]
    n_cases = sum(v for k, v in totals.items() if k not in ("FAIL", "CRASH", "HANG")) + \
        totals["CRASH"] + totals["HANG"]
    ran = n_cases - totals["skip"]
    print(f"roipool fuzz: {ran} cases run ({totals['skip']} skipped) in {elapsed:.1f} s, "
          f"seed {args.seed}, {restarts} child restarts")
    print("  by function: " + ", ".join(f"{FUNCTIONS[k]} {v}" for k, v in sorted(ops.items())))
    outs = {k: v for k, v in totals.items() if k not in ("FAIL", "skip", "CRASH", "HANG")}
    print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outs.items(), key=lambda kv: -kv[1])))
    print(f"  failures: {len(fails)}   crashes: {totals['CRASH']}   hangs: {totals['HANG']}")
    if fails:
        groups = collections.OrderedDict()
        for fl in fails:
            sig = signature(fl["spec"], fl["problems"])
            groups.setdefault(sig, []).append(fl)
        print(f"\n{len(groups)} distinct failure kinds:")
        for sig, fl in groups.items():
            print(f"\n[{len(fl)}x] {sig}")
            for p in fl[0]["problems"]:
                print("     ", p)
            print(REPLAY + json.dumps(fl[0]["spec"]) + "'")
    for c in crashes:
        print(f"\nCRASH: {c['how']}")
        print(REPLAY + json.dumps(c["spec"]) + "'")
        lines = [ln for ln in c["stderr"].splitlines() if ln.strip()]
        # the sanitizer's verdict first (its stack can push it out of the tail)
        key = [ln for ln in lines if any(k in ln for k in (
            "runtime error", "ERROR: AddressSanitizer", "SUMMARY:", "Fatal Python error"))]
        for ln in key[:6] + ["..."] * bool(key) + lines[-25:]:
            print("      | " + ln)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": ran, "skipped": totals["skip"], "seconds": elapsed,
                       "outcomes": outs, "failures": fails, "crashes": crashes,
                       "by_function": dict(ops)}, f, indent=1, default=str)
    ok = not fails and not crashes and ran >= min(args.cases, 1) * 0.9
    if ran < args.cases * 0.9:
        print(f"fuzz: only {ran} of {args.cases} cases ran", file=sys.stderr)
    return 0 if ok else 1


def _read_state(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def replay(args):
    import roipool

    from .cases import build
    from .check import run_case
    spec = json.loads(args.replay)
    print("spec:", json.dumps(spec))
    fname, a, k = build(spec)
    for i, x in enumerate(a):
        if isinstance(x, np.ndarray):
            print(f"arg {i}: ndarray shape={x.shape} dtype={x.dtype} strides={x.strides} "
                  f"flags(c={x.flags.c_contiguous}, aligned={x.flags.aligned}, writeable={x.flags.writeable})")
        else:
            print(f"arg {i}: {type(x).__name__} {x!r}"[:200])
    outcome, problems = run_case(spec, roipool, verbose=True)
    print("outcome:", outcome)
    for p in problems or []:
        print("PROBLEM:", p)
    return 1 if problems else 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python tools/fuzz.py",
        description="Fuzz roipool.roi_pooling and roi_pooling_backward with malformed and "
                    "extreme inputs.")
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=20251125)
    ap.add_argument("--timeout", type=float, default=3600, help="total seconds")
    ap.add_argument("--hang", type=float, default=120, help="seconds without progress = hang")
    ap.add_argument("--max-crashes", type=int, default=20)
    ap.add_argument("--json", help="write a machine-readable summary here")
    ap.add_argument("--mem-limit", type=float, default=6.0,
                    help="GiB of address space for the worker (0: none; ignored under ASan)")
    ap.add_argument("--replay", help="run one spec (JSON) in this process, verbosely")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--state", help=argparse.SUPPRESS)
    ap.add_argument("--failures", help=argparse.SUPPRESS)
    ap.add_argument("--self-test", choices=["crash", "hang", "corrupt"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.replay:
        return replay(args)
    if args.worker:
        return worker(args)
    return parent(args)

