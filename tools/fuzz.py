#!/usr/bin/env python
"""Fuzz roipool.roi_pooling and roi_pooling_backward with malformed and extreme inputs.

    python tools/fuzz.py --cases 10000            # the dedicated run
    python tools/fuzz.py --cases 300 --seed 7     # a quick one (the test suite runs this)
    python tools/fuzz.py --replay '<spec json>'   # re-run one printed case, verbosely

Hypothesis draws a *spec* (a small JSON dict: op, dtypes, shapes, memory layouts,
which argument to break and how, a seed for the bulk values); `build()` turns it
into the call's arguments deterministically, so every printed case can be replayed.
For every case a model of the contract (`expect_forward`, `expect_backward`: the
"Bad input" table of docs/semantics.md, with the values of a valid call from the
plain-loop rule in roipool._reference) says either "valid: this exact
out/argmax/grad" or "invalid: one of these faults" (exception type + the argument
the message must name, for a bad ROI also "row r"). A case passes when

  * a valid call returns bit-identical results (out, argmax, grad; out=/argmax=
    buffers filled and returned), or an invalid call raises one of the allowed
    exceptions (TypeError / ValueError / MemoryError) whose message names the
    argument;
  * no input array (data, rois, grad_out, argmax, nor the memory around a view) has
    changed, whether the call returned or raised;
  * out=/argmax= buffers are fully written on success and untouched on error.

The cases run in a child process: a crash (segfault, abort, sanitizer report) or
a hang is caught by this parent, which prints the case that was running and
carries on with a fresh child (up to --max-crashes). Exit status 0 only when every
case passed, no child crashed or hung.

The code is the package tools/fuzzing/ (see its __init__ for the modules).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fuzzing.runner import main  # noqa: E402  (tools/ is not a package)

if __name__ == "__main__":
    sys.exit(main())
