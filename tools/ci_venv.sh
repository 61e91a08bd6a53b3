# Sourced by tools/ci_*.sh. ci_venv PYTHON DIR: a fresh venv of that Python in
# DIR/venv with a current pip; sets VPY to its python.
ci_venv() {
    "$1" -m venv "$2/venv"
    VPY=$2/venv/bin/python
    "$VPY" -m pip install --quiet --upgrade pip
}
