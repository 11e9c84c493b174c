# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real S3 protocol server for the tests and benchmarks: moto's standalone server (``moto_server``, PyPI
``moto[server]``) on a free 127.0.0.1 port, with request signing enforced.

Before it enforces signatures the server gets two IAM users: ``admin`` (every action) and ``reader``, who may do
everything with S3 except read objects whose key starts with ``denied/`` (a real ``403 AccessDenied``). After that
every request must be signed with one of their keys: wrong keys get the store's real ``InvalidAccessKeyId`` and
``SignatureDoesNotMatch`` answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

DENIED_PREFIX = 'denied/'
REGION = 'us-east-1'


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def moto_server_binary():
    """moto_server beside this interpreter (the venv's), else on PATH; None when moto[server] is not installed."""
    beside = os.path.join(os.path.dirname(sys.executable), 'moto_server')
    return beside if os.access(beside, os.X_OK) else shutil.which('moto_server')


class S3Server(object):
    """One moto_server process; ``start()`` returns it ready, with ``admin`` and ``reader`` keys."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        self.proc = None
        self.log = tempfile.NamedTemporaryFile(prefix='appcare-moto-', suffix='.log', delete=False)  # pylint: disable=consider-using-with
        self.admin = self.reader = None

    def start(self, timeout=30):
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise

    def _start(self, timeout):
        binary = moto_server_binary()
        if binary is None:
            raise RuntimeError("moto_server not found: pip install 'moto[server]' (requirements-dev.txt)")
        self.proc = subprocess.Popen([binary, '-H', '127.0.0.1', '-p', str(self.port)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.endpoint + '/moto-api/', timeout=2):
                    break
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError('moto_server did not start on port %d: %s' % (self.port, self.output())) from exc
                time.sleep(0.1)
        iam = boto3.client('iam', endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id='bootstrap',
                           aws_secret_access_key='bootstrap')
        self.admin = self._user(iam, 'admin', [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}])
        self.reader = self._user(iam, 'reader', [
            {'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'},
            {'Effect': 'Deny', 'Action': 's3:GetObject', 'Resource': 'arn:aws:s3:::*/%s*' % DENIED_PREFIX}])
        # From now on every request must be signed by a known key.
        request = urllib.request.Request(self.endpoint + '/moto-api/reset-auth', data=b'0', method='POST',
                                         headers={'Content-Type': 'text/plain'})
        with urllib.request.urlopen(request, timeout=10):
            pass
        return self

    @staticmethod
    def _user(iam, name, statements):
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName='%s-policy' % name,
                            PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': statements}))
        key = iam.create_access_key(UserName=name)['AccessKey']
        return {'access_key_id': key['AccessKeyId'], 'secret_access_key': key['SecretAccessKey']}

    def args(self, user='admin', **extra):
        """The storage modules' connection options for ``user``."""
        args = dict(endpoint_url=self.endpoint, region=REGION, **getattr(self, user))
        args.update(extra)
        return args

    def client(self, user='admin'):
        keys = getattr(self, user)
        return boto3.client('s3', endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=keys['access_key_id'], aws_secret_access_key=keys['secret_access_key'],
                            config=Config(s3={'addressing_style': 'path'}, max_pool_connections=16,
                                          retries={'max_attempts': 3, 'mode': 'standard'}))

    def output(self):
        try:
            with open(self.log.name, errors='replace') as handle:
                return handle.read()[-2000:]
        except OSError:
            return ''

    def kill(self):
        """The server dies at once (SIGKILL), as a crashed store does."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        if os.path.exists(self.log.name):
            os.unlink(self.log.name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def fill(client, bucket, objects, create=True):
    """Create ``bucket`` (unless ``create`` is false) and put ``objects`` ({key: bytes}) into it, in parallel."""
    from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel
    if create:
        client.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]), objects.items()))
