# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: 50 slow HTTP endpoints, one http_health_info task against an ansible.builtin.uri loop.

50 endpoints, each its own local threaded HTTP server on 127.0.0.1 (as 50 services would be; one test
server's listen backlog of 5 would drop simultaneous connections and add SYN retries of 1 s), each
answering ``/health`` with 200 after 200 ms. Two real ``ansible-playbook`` runs against localhost (local
connection) probe them, alternating in one invocation:

* http_health_info -- one ``appcare.maintenance.http_health_info`` task with the 50 endpoints
                      (probed concurrently, ``max_workers`` 50 by default);
* uri              -- one ``ansible.builtin.uri`` task looping over the same 50 URLs with
                      ``status_code: 200``, the way a user writes it today.

Each run must succeed: ansible-playbook exits 0, a small callback written into the temporary directory
records the task results, and the script checks that http_health_info reported 50 endpoints answering
200 and that the uri loop returned 50 items with status 200; the servers must also have received 50
requests. Prints the median wall time of each (whole ``ansible-playbook`` invocation), the floor of the
endpoints' latency alone (50 x 0.2 s one after the other, 0.2 s all at once), the ratio
uri / http_health_info and whether the target (at least 10) is met. Run by hand::

    .venv/bin/python benchmarks/http_probes.py --repeat 3

``--smoke`` is the smallest run of the same code (5 endpoints answering after 50 ms, one round) for
``make test``: every check above still applies and fails the run, but the ratio is not compared with the
target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, 'tests'), os.path.join(REPO, 'collections')]

from webserver import LocalServer, Route  # noqa: E402

TARGET = 10.0

# Records every task result of the run as one JSON line, so the script can check what was measured.
RECORDER = '''from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'bench_record'
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, state):
        with open(os.environ['BENCH_RECORD'], 'a') as handle:
            handle.write(json.dumps({'task': result.task_name, 'state': state, 'result': result.result},
                                    default=str) + '\\n')

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed')

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')
'''


def write_files(workdir, urls):
    inventory = os.path.join(workdir, 'hosts.yml')
    with open(inventory, 'w') as handle:
        handle.write('all:\n  hosts:\n    localhost:\n  vars:\n    ansible_connection: local\n'
                     '    ansible_python_interpreter: "%s"\n' % sys.executable)
    endpoints = ''.join('        - {name: svc%02d, url: "%s"}\n' % (i, url) for i, url in enumerate(urls))
    ours = os.path.join(workdir, 'http_health_info.yml')
    with open(ours, 'w') as handle:
        handle.write('- hosts: all\n  gather_facts: false\n  tasks:\n'
                     '    - name: probe\n      appcare.maintenance.http_health_info:\n        endpoints:\n'
                     + endpoints)
    items = ''.join('        - "%s"\n' % url for url in urls)
    uri = os.path.join(workdir, 'uri.yml')
    with open(uri, 'w') as handle:
        handle.write('- hosts: all\n  gather_facts: false\n  tasks:\n'
                     '    - name: probe\n      ansible.builtin.uri:\n        url: "{{ item }}"\n'
                     '        status_code: 200\n      loop:\n' + items)
    callbacks = os.path.join(workdir, 'callbacks')
    os.mkdir(callbacks)
    with open(os.path.join(callbacks, 'bench_record.py'), 'w') as handle:
        handle.write(RECORDER)
    return inventory, ours, uri, callbacks


def check_ours(result, count):
    endpoints = result.get('endpoints') or []
    good = [e for e in endpoints if e['status_codes'] == [200] and not e['errors']]
    if len(endpoints) != count or len(good) != count:
        return 'http_health_info reported %d endpoints, %d answering 200' % (len(endpoints), len(good))
    return None


def check_uri(result, count):
    items = result.get('results') or []
    good = [i for i in items if i.get('status') == 200 and not i.get('failed')]
    if len(items) != count or len(good) != count:
        return 'the uri loop returned %d items, %d with status 200' % (len(items), len(good))
    return None


def received(servers):
    return sum(len(server.requests) for server in servers)


def run(label, argv, env, record, servers, count, check):
    if os.path.exists(record):
        os.unlink(record)
    before = received(servers)
    started = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                          check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit('%s: ansible-playbook failed (rc %d):\n%s' % (label, proc.returncode, proc.stdout[-3000:]))
    with open(record) as handle:
        events = [json.loads(line) for line in handle]
    probes = [e for e in events if e['task'] == 'probe']
    if len(probes) != 1 or probes[0]['state'] != 'ok':
        raise SystemExit('%s: the probe task did not succeed once: %s' % (label, [e['state'] for e in probes]))
    problem = check(probes[0]['result'], count)
    arrived = received(servers) - before
    if problem is None and arrived != count:
        problem = 'the servers received %d requests, not %d' % (arrived, count)
    if problem:
        raise SystemExit('%s: %s\n%s' % (label, problem, proc.stdout[-3000:]))
    return elapsed, probes[0]['result']


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--endpoints', type=int, default=50)
    parser.add_argument('--delay', type=float, default=0.2, help='seconds each endpoint waits before answering')
    parser.add_argument('--repeat', type=int, default=3, help='runs of each; the median is reported')
    parser.add_argument('--smoke', action='store_true',
                        help='smallest run of the whole code path (5 endpoints, 50 ms, one round); no target is checked')
    opts = parser.parse_args()
    if opts.smoke:
        opts.endpoints, opts.delay, opts.repeat = 5, 0.05, 1

    servers = []
    workdir = tempfile.mkdtemp(prefix='appcare-http-bench-')
    try:
        for _i in range(opts.endpoints):
            servers.append(LocalServer({'/health': Route(200, b'ok', delay=opts.delay)}).start())
        inventory, ours, uri, callbacks = write_files(workdir, [server.url + '/health' for server in servers])
        record = os.path.join(workdir, 'record.jsonl')
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, 'collections'),
                   ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false', ANSIBLE_LOCALHOST_WARNING='false',
                   ANSIBLE_NOCOLOR='1', ANSIBLE_CALLBACK_PLUGINS=callbacks, ANSIBLE_CALLBACKS_ENABLED='bench_record',
                   BENCH_RECORD=record)
        playbook_bin = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
        sides = (('http_health_info', [playbook_bin, '-i', inventory, ours], check_ours),
                 ('uri', [playbook_bin, '-i', inventory, uri], check_uri))
        runs = dict((label, []) for label, _argv, _check in sides)
        slowest = []
        for round_ in range(opts.repeat):
            for label, argv, check in (sides if round_ % 2 == 0 else sides[::-1]):
                elapsed, result = run(label, argv, env, record, servers, opts.endpoints, check)
                runs[label].append(elapsed)
                if label == 'http_health_info':
                    slowest.append(max(e['latency_ms']['max'] for e in result['endpoints']))
                print('  round %d  %-16s %7.2f s' % (round_ + 1, label, elapsed))
        med = dict((label, statistics.median(times)) for label, times in runs.items())
        ratio = med['uri'] / med['http_health_info']
        print('\n%d endpoints, %.0f ms each, ansible-playbook on localhost, median of %d alternating runs:'
              % (opts.endpoints, opts.delay * 1000, opts.repeat))
        print('  http_health_info (1 task)        %7.2f s   (slowest probe seen by the module: %.0f ms)'
              % (med['http_health_info'], max(slowest)))
        print('  uri (loop of %d)                 %7.2f s' % (opts.endpoints, med['uri']))
        print('  floor: sequential %.1f s, concurrent %.1f s' % (opts.endpoints * opts.delay, opts.delay))
        if opts.smoke:
            print('  ratio uri / http_health_info: %.1f' % ratio)
            print('smoke run: every run probed every endpoint; figures this small are not compared with the target')
        else:
            print('  ratio uri / http_health_info: %.1f  (target at least %.0f: %s)'
                  % (ratio, TARGET, 'met' if ratio >= TARGET else 'NOT met'))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
