#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection at the path ansible-test needs
# (ansible_collections/appcare/maintenance), offline: the pip bootstrap ansible-test would download
# is replaced by a stand-in that uses ensurepip and the package index pip is configured with.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/appcare/maintenance
mkdir -p "$dest"
cd "$here"
if git rev-parse --git-dir >/dev/null 2>&1; then
  # Tracked and new files, minus deleted ones: the tree as it would be committed.
  git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | tar --null -T - -cf - | tar -C "$dest" -xf -
else
  tar --exclude=.venv --exclude=collections --exclude=tests/output -cf - . | tar -C "$dest" -xf -
fi
core_ver=$("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
for pipver in 24_2 25_0 25_1 25_2 25_3 26_0; do
  # Never replace a real bootstrap script that is already cached.
  [ -f "$cache/get_pip_$pipver.py" ] && continue
  cat > "$cache/get_pip_$pipver.py" <<'PY'
import subprocess, sys
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
if args:
    subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)
PY
done
cd "$dest"
echo "ansible-test sanity (ansible-core $core_ver)"
PATH="$venv/bin:$PATH" "$venv/bin/ansible-test" sanity --python 3.11 --local --color no "$@"
