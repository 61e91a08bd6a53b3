"""The fuzzer behind tools/fuzz.py, one module per job:

common.py      dtype tests and helpers the others share
model.py       the contract as faults (exception, argument named) or the values
               of roipool._reference for a valid call
cases.py       a JSON spec -> the call's arguments, deterministically
strategies.py  the hypothesis strategy that draws specs
check.py       one case: run it, judge results, exceptions, inputs and buffers
runner.py      parent / worker processes (crash and hang reports), replay, CLI
"""
