#!/usr/bin/env bash
# Known vulnerabilities of the serving runtime: pip-audit over exactly what scripts/install-runtime.sh
# installs (fastembed-adapter[serve]: onnxruntime, tokenizers, numpy, starlette, uvicorn, ...; no
# torch), pinned from a runtime venv built by that script. fastembed-adapter itself (not on PyPI) and
# the venv's own pip/setuptools/wheel are left out.
#
#   scripts/audit.sh
#
#   FEA_CACHE               cache root (default ~/.cache/fastembed-adapter); the venv is kept in
#                           $FEA_CACHE/audit/runtime-<key>, key = pyproject.toml + install-runtime.sh + Python,
#                           and rebuilt after FEA_AUDIT_MAX_AGE_DAYS (default 7) so that new releases of
#                           the unpinned dependencies are audited
#   FEA_PYTHON              interpreter of the runtime venv (default python3)
#   FEA_PIP_AUDIT           the pip-audit executable (default: pip-audit on PATH, else $FEA_VENV or .venv's)
#   FEA_AUDIT_SERVICE       pypi (PyPI's JSON API, the default) or osv
#   FEA_AUDIT_TIMEOUT       seconds per request (default 15)
#
# Exit status: 0 no known vulnerability in the packages checked, or the vulnerability database is
# unreachable (said in so many words, with the number of packages NOT checked; nothing is claimed);
# 1 a known vulnerability; 2 the audit itself could not run (no pip-audit, the install failed).
#
# The database is probed first with the request pip-audit makes, for a release known to be vulnerable
# (pip 20.0): a mirror that answers 404 to per-release JSON makes pip-audit skip every package and
# still print "No known vulnerabilities found", so its JSON is read and skipped packages are counted.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FEA_CACHE:-$HOME/.cache/fastembed-adapter}
PYTHON=${FEA_PYTHON:-python3}
SERVICE=${FEA_AUDIT_SERVICE:-pypi}
TIMEOUT=${FEA_AUDIT_TIMEOUT:-15}
MAX_AGE_DAYS=${FEA_AUDIT_MAX_AGE_DAYS:-7}
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$CACHE/pip}
export PIP_DISABLE_PIP_VERSION_CHECK=1

case "$SERVICE" in pypi|osv) ;; *) echo "audit: FEA_AUDIT_SERVICE must be pypi or osv, got '$SERVICE'" >&2; exit 2 ;; esac
AUDIT=${FEA_PIP_AUDIT:-$(command -v pip-audit || true)}
[ -n "$AUDIT" ] || AUDIT="${FEA_VENV:-$ROOT/.venv}/bin/pip-audit"
if [ ! -x "$AUDIT" ]; then
  echo "audit: pip-audit not found (set FEA_PIP_AUDIT, or pip install 'pip-audit>=2.7': it is in the dev extra)" >&2
  exit 2
fi
AUDIT_PY=$(head -1 "$AUDIT" | sed -n 's/^#! *//p' | cut -d' ' -f1)  # pip-audit's interpreter, for the probe
"$AUDIT_PY" -c 'import requests' 2>/dev/null || AUDIT_PY=$PYTHON

# --- is the vulnerability database there? (the request pip-audit makes, for a known-vulnerable release)
probe() {  # prints why not and fails when it is not
  "$AUDIT_PY" - "$SERVICE" "$TIMEOUT" <<'PYCODE'
import sys

import requests


def unreachable(reason: str) -> None:
    print(reason)
    sys.exit(1)


service, timeout = sys.argv[1], float(sys.argv[2])
if service == "pypi":
    url, key, query = "https://pypi.org/pypi/pip/20.0/json", "vulnerabilities", None
else:
    url, key, query = "https://api.osv.dev/v1/query", "vulns", {"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "20.0"}
try:
    response = requests.post(url, json=query, timeout=timeout) if query else requests.get(url, timeout=timeout)
except requests.RequestException as exc:
    cause = str(exc).split("(Caused by ")[-1].rstrip(")")
    unreachable(f"{type(exc).__name__} for {url}: {cause[:200]}")
if response.status_code != 200:
    unreachable(f"{url} answered HTTP {response.status_code} instead of the release's vulnerability record")
try:
    records = response.json().get(key)
except ValueError:
    unreachable(f"{url} answered something that is not JSON")
if not records:
    unreachable(f"{url} answered without the known vulnerabilities of pip 20.0")
PYCODE
}
REASON=$(probe) && REACHABLE=1 || REACHABLE=0

# --- the runtime venv, built by install-runtime.sh and reused -------------------------------------
KEY=$("$PYTHON" - "$ROOT" <<'PYCODE'
import hashlib, pathlib, sys

root = pathlib.Path(sys.argv[1])
parts = [(root / name).read_bytes() for name in ("pyproject.toml", "scripts/install-runtime.sh")]
print(hashlib.sha256(b"\0".join([*parts, sys.version.encode()])).hexdigest()[:12])
PYCODE
)
VENV="$CACHE/audit/runtime-$KEY"
mkdir -p "$CACHE/audit"
exec 9>"$CACHE/audit/.lock"
flock 9 2>/dev/null || true
if [ ! -f "$VENV/.complete" ] || [ -n "$(find "$VENV/.complete" -mtime "+$MAX_AGE_DAYS" 2>/dev/null)" ]; then
  echo "audit: building the runtime venv $VENV with scripts/install-runtime.sh" >&2
  rm -rf "$VENV.new"
  if "$PYTHON" -m venv "$VENV.new" >"$CACHE/audit/install.log" 2>&1 &&
     bash "$ROOT/scripts/install-runtime.sh" "$VENV.new/bin/python" "$ROOT" >>"$CACHE/audit/install.log" 2>&1; then
    touch "$VENV.new/.complete"
    rm -rf "$VENV" && mv "$VENV.new" "$VENV"  # only bin/python is used from here on, which survives the move
    find "$CACHE/audit" -maxdepth 1 -name 'runtime-*' ! -name "runtime-$KEY" -exec rm -rf {} +
  else
    rm -rf "$VENV.new"
    if [ -f "$VENV/.complete" ]; then
      echo "audit: rebuilding failed (log: $CACHE/audit/install.log); auditing the older runtime venv" >&2
    elif [ "$REACHABLE" = 0 ]; then  # offline: neither the index nor the database
      echo "pip-audit: vulnerability database unreachable ($REASON); the runtime packages NOT checked (no runtime venv, and building one failed: $CACHE/audit/install.log)"
      exit 0
    else
      tail -20 "$CACHE/audit/install.log" >&2
      echo "audit: scripts/install-runtime.sh failed (log: $CACHE/audit/install.log); nothing was checked" >&2
      exit 2
    fi
  fi
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/python" - >"$WORK/requirements.txt" <<'PYCODE'
import importlib.metadata as metadata

left_out = {"fastembed-adapter", "pip", "setuptools", "wheel"}  # ours (not on PyPI), and the venv's own
pins = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name and name.lower().replace("_", "-") not in left_out:
        pins[name.lower()] = f"{name}=={dist.version}"
print("\n".join(sorted(pins.values())))
PYCODE
COUNT=$(grep -c . "$WORK/requirements.txt")
if [ "$REACHABLE" = 0 ]; then
  echo "pip-audit: vulnerability database unreachable ($REASON); $COUNT packages NOT checked"
  exit 0
fi

# --- the audit ------------------------------------------------------------------------------------
set +e
"$AUDIT" -r "$WORK/requirements.txt" --no-deps --disable-pip --progress-spinner off -s "$SERVICE" \
  --timeout "$TIMEOUT" --cache-dir "$CACHE/pip-audit" -f json -o "$WORK/audit.json" 2>"$WORK/stderr"
STATUS=$?
set -e
if [ ! -s "$WORK/audit.json" ]; then
  if grep -qiE 'connect|timeout|timed out|resolve|ServiceError|unreachable|blocking this service|SSLError|Max retries' "$WORK/stderr"; then
    REASON=$(grep -iE 'Error|connect' "$WORK/stderr" | grep -v '^ ' | tail -1 | cut -c1-240)
    echo "pip-audit: vulnerability database unreachable (${REASON:-pip-audit could not reach it}); $COUNT packages NOT checked"
    exit 0
  fi
  tail -20 "$WORK/stderr" >&2
  echo "audit: pip-audit failed (exit $STATUS) without a result; nothing was checked" >&2
  exit 2
fi
"$AUDIT_PY" - "$WORK/audit.json" "$SERVICE" "$COUNT" <<'PYCODE'
import json
import sys

report = json.load(open(sys.argv[1], encoding="utf-8"))
service, count = sys.argv[2], int(sys.argv[3])
deps = report["dependencies"]
skipped = [d for d in deps if "skip_reason" in d]
checked = [d for d in deps if "skip_reason" not in d]
found = [(d, v) for d in checked for v in d.get("vulns", [])]
if not checked:
    reason = skipped[0]["skip_reason"] if skipped else "no package in the answer"
    print(f"pip-audit: vulnerability database unreachable (every package skipped: {reason}); {count} packages NOT checked")
    sys.exit(0)
for dep, vuln in found:
    fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
    aliases = ", ".join(vuln.get("aliases") or [])
    print(f"{dep['name']} {dep['version']}: {vuln['id']}{f' ({aliases})' if aliases else ''}, fixed in {fixes}")
for dep in skipped:
    print(f"NOT checked: {dep['name']}: {dep['skip_reason']}")
where = f"{len(checked)} runtime packages checked against {service}"
tail = f"; {len(skipped)} package{'s' * (len(skipped) > 1)} NOT checked" if skipped else ""
if found:
    packages = len({d["name"] for d, _ in found})
    what = f"{len(found)} known vulnerabilit{'y' if len(found) == 1 else 'ies'} in {packages} package{'s' * (packages > 1)}"
    print(f"pip-audit: {what} ({where}{tail})")
    sys.exit(1)
print(f"pip-audit: no known vulnerabilities ({where}{tail})")
PYCODE
