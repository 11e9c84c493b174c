# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Makes the collection importable as ``ansible_collections.appcare.maintenance`` for every test."""

from __future__ import annotations

import os
import sys

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, 'collections')


def ensure_collection_link():
    link = os.path.join(COLLECTIONS_ROOT, 'ansible_collections', 'appcare', 'maintenance')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(REPO_ROOT, os.path.dirname(link)), link)
    return link


ensure_collection_link()
for path in (COLLECTIONS_ROOT, TESTS_DIR):
    if path not in sys.path:
        sys.path.insert(0, path)
