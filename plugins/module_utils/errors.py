# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions raised by the collection's shared code.

Helpers raise these; only a module's main() turns them into fail_json().
"""

from __future__ import annotations


class AppcareError(Exception):
    """Base class of every error the collection raises on purpose."""


class ConfigurationError(AppcareError):
    """An option or combination of options is invalid (detected before any work starts)."""


class ThresholdError(ConfigurationError):
    """A threshold is malformed or contradictory (warning beyond critical)."""


class DependencyError(AppcareError):
    """A Python library or binary the module needs is missing."""


class ConnectionFailure(AppcareError):
    """The database could not be reached or refused the login."""


class QueryError(AppcareError):
    """A query the module cannot do without failed (as opposed to one check that becomes unknown)."""


def cause_text(exc):
    """The cause of a failure on one line: the collection's own errors as raised, an OS error with the file it
    concerns. (Database errors: ``postgres.db_error_text``; ``postgres.failure_message`` picks.)"""
    if isinstance(exc, OSError) and not isinstance(exc, AppcareError):
        where = exc.filename or ''
        return '%s%s' % ('%s: ' % where if where else '', exc.strerror or exc)
    return ' '.join(str(exc).split())


def failure_message(what, exc):
    """The one shape of a failure message of a module without a database: ``invalid options: <cause>`` for
    options refused before any work, ``<what> failed: <cause>`` otherwise (``postgres.failure_message`` adds
    database errors)."""
    if isinstance(exc, ConfigurationError):
        return 'invalid options: %s' % cause_text(exc)
    return '%s failed: %s' % (what, cause_text(exc))
