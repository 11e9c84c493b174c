# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one clock: aware UTC times, and the one text form they are stored in."""

from __future__ import annotations

import datetime

ISO_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'


def utcnow():
    """Now, as an aware UTC datetime."""
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    """``2026-11-23T02:00:00.000000Z``: how times are written into manifests, state and history files."""
    return moment.strftime(ISO_FORMAT)


def parse_iso(text):
    """The inverse of ``iso``; raises TypeError or ValueError for anything else."""
    return datetime.datetime.strptime(text, ISO_FORMAT).replace(tzinfo=datetime.timezone.utc)
