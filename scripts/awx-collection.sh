#!/usr/bin/env bash
# Puts the awx.awx collection (the modules awx/configure.yml uses) into the test-time collections path,
# collections/ansible_collections/awx/awx, without Ansible Galaxy and without replacing ansible-core:
# awx.awx ships inside the "ansible" package on PyPI, so download that wheel (no dependencies, nothing
# installed) and extract only ansible_collections/awx/awx from it. Idempotent: does nothing when the
# pinned version is already there.
#
#   scripts/awx-collection.sh            # into ./collections
#   COLLECTIONS_DIR=/some/path scripts/awx-collection.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
python=${PYTHON:-$venv/bin/python}
# ansible 12.3.0 bundles awx.awx 24.6.1 (the last awx.awx release; AWX 24.6 and Automation Controller 4.x).
ansible_version=${AWX_ANSIBLE_VERSION:-12.3.0}
awx_version=${AWX_COLLECTION_VERSION:-24.6.1}
collections=${COLLECTIONS_DIR:-$here/collections}
dest=$collections/ansible_collections/awx/awx
cache=${AWX_WHEEL_CACHE:-$here/.build/awx-wheel}

installed=$("$python" - "$dest/MANIFEST.json" <<'PY'
import json, sys
try:
    with open(sys.argv[1]) as handle:
        print(json.load(handle)['collection_info']['version'])
except (OSError, ValueError, KeyError):
    print('')
PY
)
if [ "$installed" = "$awx_version" ]; then
  echo "awx.awx $awx_version is already in $dest"
  exit 0
fi

mkdir -p "$cache"
wheel=$cache/ansible-$ansible_version-py3-none-any.whl
if [ ! -f "$wheel" ]; then
  "$python" -m pip download --quiet --no-deps --only-binary=:all: "ansible==$ansible_version" -d "$cache"
fi

"$python" - "$wheel" "$collections" "$awx_version" <<'PY'
import json
import os
import shutil
import sys
import tempfile
import zipfile

wheel, collections, expected = sys.argv[1:4]
prefix = 'ansible_collections/awx/awx/'
dest = os.path.join(collections, 'ansible_collections', 'awx', 'awx')
with zipfile.ZipFile(wheel) as archive:
    names = [n for n in archive.namelist() if n.startswith(prefix) and not n.endswith('/')]
    if not names:
        sys.exit('%s holds no awx.awx collection' % wheel)
    manifest = json.loads(archive.read(prefix + 'MANIFEST.json'))
    version = manifest['collection_info']['version']
    if version != expected:
        sys.exit('%s holds awx.awx %s, not %s: set AWX_ANSIBLE_VERSION and AWX_COLLECTION_VERSION together'
                 % (wheel, version, expected))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    staging = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix='.awx-')
    for name in names:
        target = os.path.join(staging, name[len(prefix):])
        if not os.path.realpath(target).startswith(os.path.realpath(staging) + os.sep):
            sys.exit('refusing to extract %s outside the collection directory' % name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with archive.open(name) as source, open(target, 'wb') as out:
            shutil.copyfileobj(source, out)
shutil.rmtree(dest, ignore_errors=True)
os.rename(staging, dest)
print('awx.awx %s installed in %s' % (version, dest))
PY
