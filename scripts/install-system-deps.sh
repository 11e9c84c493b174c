#!/usr/bin/env bash
# Debian packages the tests and the demo need: PostgreSQL 15 (second server version under test),
# Python's venv module, chromium (the dashboard test), gnupg (encrypted backups) and shellcheck for ansible-test sanity. Does nothing where they are present, or where apt does not exist.
set -euo pipefail
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-get not found: skipping Debian packages (PostgreSQL 15 tests will be skipped)"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "not root and no sudo: cannot install Debian packages" >&2; exit 1; fi
fi
need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql postgresql-contrib)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v git >/dev/null 2>&1 || need+=(git)
# The run report's HTML dashboard is checked in a real headless browser.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Encrypted backups are written and read by GnuPG (gpg, gpgconf).
command -v gpg >/dev/null 2>&1 && command -v gpgconf >/dev/null 2>&1 || need+=(gnupg)
# ansible-test sanity's shellcheck test skips itself without it.
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
# pgbackrest_info and pgbackrest_backup are tested against a real pgBackRest (Debian 12: 2.45).
command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest)
# The pitr_setup role (molecule scenario) installs pgbackrest with ansible.builtin.package: apt needs python3-apt.
/usr/bin/python3 -c 'import apt' >/dev/null 2>&1 || need+=(python3-apt)
# benchmarks/storage_backup.py compares storage_backup with rclone copy of the same buckets.
command -v rclone >/dev/null 2>&1 || need+=(rclone)
# pg_log_info is cross-checked against pgBadger on the same logs (tests/integration/test_pg_log_pgbadger.py) and
# benchmarked against it (benchmarks/log_review.py); its JSON output (-x json) needs Perl's JSON::XS.
command -v pgbadger >/dev/null 2>&1 || need+=(pgbadger)
perl -MJSON::XS -e 1 >/dev/null 2>&1 || need+=(libjson-xs-perl)
# web_links_info is cross-checked against linkchecker on the same local site (and benchmarked against it).
command -v linkchecker >/dev/null 2>&1 || need+=(linkchecker)
# dependency_audit_info audits npm projects with the real npm; web_page_info is cross-checked against Lighthouse (npm).
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
# The Prometheus export: promtool checks the metrics and rules, node_exporter and a Pushgateway read them back.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# A bare machine may have no package lists yet; the package's own cluster is not used by the tests.
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
