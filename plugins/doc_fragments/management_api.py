# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # How the modules that read Supabase's Management API reach it (supabase_api.management_api_argument_spec).
    DOCUMENTATION = r'''
options:
  validate_certs:
    description: Verify the API's TLS certificate and host name.
    type: bool
    default: true
  ca_cert:
    description: A CA bundle (PEM) to verify the API's certificate with instead of the system's (a proxy's CA).
    type: path
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 30
  retries:
    description: Retries of a request that got a server error (5xx) or no answer (refused, reset, timed out).
    type: int
    default: 2
  max_retry_wait:
    description:
      - Most seconds one request may wait between its attempts altogether - for rate limits (HTTP 429, its
        C(Retry-After)) and retries. A rate limit that asks for a longer wait fails the request at once, saying so.
    type: float
    default: 60
'''
