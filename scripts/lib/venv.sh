# Sourced by scripts/run and scripts/test: make .venv and install Postroom into it once.
#
# The install runs on the first start and again only when pyproject.toml changes (its
# SHA-256 is kept in .venv after a successful install), so later starts need no package
# index. The source itself is installed editable: code changes need no reinstall.

# postroom_venv [EXTRA]: Postroom (with the optional dependencies EXTRA, e.g. "test").
postroom_venv() {
  local extra="${1:-}" spec="." stamp=".venv/.postroom-installed" reason want
  if [ -n "$extra" ]; then
    spec=".[$extra]"
    stamp=".venv/.postroom-installed-$extra"
  fi
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv || return 1
    .venv/bin/python -m pip install --quiet --upgrade pip || return 1
  fi
  want="$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')" || return 1
  # An install with the test extra includes the plain one.
  if _postroom_stamp_is "$stamp" "$want" || { [ -z "$extra" ] && _postroom_stamp_is "$stamp-test" "$want"; }; then
    return 0
  fi
  reason="first install"
  if [ -f "$stamp" ] || { [ -z "$extra" ] && [ -f "$stamp-test" ]; }; then
    reason="pyproject.toml changed"
  fi
  echo "Installing Postroom ($spec) into .venv ($reason)..." >&2
  .venv/bin/python -m pip install --quiet -e "$spec" || return 1
  printf '%s\n' "$want" > "$stamp"
}

_postroom_stamp_is() {
  [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]
}
