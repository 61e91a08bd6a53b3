"""What `import roipool` costs on top of `import numpy`.

The cumulative microseconds Python's ``-X importtime`` gives the top-level
``roipool`` entry (its own modules and whatever they import that numpy had
not), in fresh interpreters after one warm-up run; prints the median and the
runs. A bench figure, not a test: it is wall-clock time.

    python bench/import_time.py --runs 9
"""
import argparse
import os
import statistics
import subprocess
import sys


def import_us(python=sys.executable):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    err = subprocess.run([python, "-X", "importtime", "-c", "import numpy; import roipool"],
                         capture_output=True, text=True, env=env, check=True, timeout=120).stderr
    for line in err.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line[len("import time:"):].split("|")
            if name.rstrip() == " roipool":  # the top level: one space, no nesting indent
                return int(cumulative)
    raise RuntimeError(f"no top-level roipool entry in -X importtime's output:\n{err}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args(argv)
    import_us()  # the OS file cache and the .pyc files
    runs = [import_us() for _ in range(args.runs)]
    print(f"import roipool on top of numpy: median {statistics.median(runs) / 1000:.1f} ms "
          f"over {len(runs)} fresh interpreters ({', '.join(f'{r / 1000:.1f}' for r in runs)} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
