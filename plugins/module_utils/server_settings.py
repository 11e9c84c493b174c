# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server settings through ALTER SYSTEM (the module pg_settings): compare what is asked with what the server will
run with, write only the differences, reload for the settings a reload applies, and say which need a restart.

"What the server will run with" is the last entry for the setting in its configuration files (``pg_file_settings``:
``postgresql.conf``, its includes, then ``postgresql.auto.conf`` that ALTER SYSTEM writes), else its built-in
default. A setting ALTER SYSTEM already wrote but that waits for a restart therefore counts as set (a second run
changes nothing) and still as needing the restart (``restart_required``) until the server runs with it.
"""

from __future__ import annotations

import re
import time

from ansible_collections.appcare.maintenance.plugins.module_utils.errors import ConfigurationError, QueryError

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by Session
    sql = None

# Contexts a restart of the server applies; every other settable context is applied by a reload
# (backend and superuser-backend: for sessions opened after it).
RESTART_CONTEXTS = ('postmaster',)
UNSETTABLE_CONTEXTS = ('internal',)

TRUE_WORDS = ('on', 'true', 'yes', '1')
FALSE_WORDS = ('off', 'false', 'no', '0')

# Units PostgreSQL accepts, in bytes and in microseconds.
MEMORY_UNITS = {'B': 1, 'kB': 1024, 'MB': 1024 ** 2, 'GB': 1024 ** 3, 'TB': 1024 ** 4}
TIME_UNITS = {'us': 1, 'ms': 1000, 's': 1000 ** 2, 'min': 60 * 1000 ** 2, 'h': 3600 * 1000 ** 2,
              'd': 86400 * 1000 ** 2}
NUMBER_RE = re.compile(r'^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$')

SETTINGS_SQL = """
SELECT name, setting, unit, vartype, context, pending_restart, enumvals
  FROM pg_catalog.pg_settings WHERE name = ANY(%s)
"""

# The last entry of each setting in the configuration files (the one a reload or restart applies).
FILE_SETTINGS_SQL = """
SELECT DISTINCT ON (name) name, setting, sourcefile, sourceline, error
  FROM pg_catalog.pg_file_settings WHERE name = ANY(%s)
 ORDER BY name, seqno DESC
"""

PENDING_RESTART_SQL = 'SELECT name FROM pg_catalog.pg_settings WHERE pending_restart ORDER BY name'


def unit_size(unit):
    """'8kB' -> (8192, 'memory'), 's' -> (1000000, 'time'), None/'' -> (1, None)."""
    if not unit:
        return 1, None
    match = re.match(r'^(\d*)\s*([A-Za-z]+)$', unit)
    if not match:
        return 1, None
    factor = int(match.group(1) or 1)
    name = match.group(2)
    if name in MEMORY_UNITS:
        return factor * MEMORY_UNITS[name], 'memory'
    if name in TIME_UNITS:
        return factor * TIME_UNITS[name], 'time'
    return 1, None


def normalize(value, vartype, unit=None, enumvals=None):
    """A value of a setting in a form two spellings of the same value compare equal in:
    ``on``/``off`` for booleans, a number in the setting's own unit for numbers (``'1min'`` of a setting in
    seconds is ``60``), lower case for enums (one of ``enumvals`` when given), the text itself for strings. Raises ConfigurationError for a value
    the type cannot hold."""
    text = '' if value is None else str(value).strip()
    if isinstance(value, bool):
        text = 'on' if value else 'off'
    if vartype == 'bool':
        word = text.lower()
        if word in TRUE_WORDS:
            return 'on'
        if word in FALSE_WORDS:
            return 'off'
        raise ConfigurationError('%r is not a boolean (on, off, true, false, yes, no, 1, 0)' % (value,))
    if vartype in ('integer', 'real'):
        match = NUMBER_RE.match(text)
        if not match:
            raise ConfigurationError('%r is not a number' % (value,))
        number = float(match.group(1))
        given = match.group(2)
        if given:
            base, kind = unit_size(unit)
            if given in MEMORY_UNITS and kind == 'memory':
                number = number * MEMORY_UNITS[given] / base
            elif given in TIME_UNITS and kind == 'time':
                number = number * TIME_UNITS[given] / base
            else:
                raise ConfigurationError('%r: unit %s does not fit a setting measured in %s' % (value, given, unit or 'no unit'))
        if vartype == 'integer':
            return int(round(number))
        return round(number, 9)
    if vartype == 'enum':
        word = text.lower()
        if enumvals:
            allowed = [str(v).lower() for v in enumvals]
            # archive_mode, huge_pages ...: PostgreSQL also takes the boolean words for their on and off
            if word not in allowed and word in TRUE_WORDS + FALSE_WORDS and 'on' in allowed and 'off' in allowed:
                word = 'on' if word in TRUE_WORDS else 'off'
            if word not in allowed:
                raise ConfigurationError('%r is not one of %s' % (value, ', '.join(allowed)))
        return word
    return text


def _norm(row, value):
    """``value`` normalized for the pg_settings ``row`` of its setting."""
    return normalize(value, row['vartype'], row['unit'], row['enumvals'])


def read_state(session, names):
    """({name: pg_settings row plus ``target``, the value the files give it, and ``target_source``}, note); raises
    QueryError for a name the server does not know. The note is None when pg_file_settings was readable, else it
    says what the comparison falls back to."""
    rows = {row['name']: row for row in session.query(SETTINGS_SQL, (list(names),))}
    unknown = sorted(set(names) - set(rows))
    if unknown:
        raise QueryError('unknown setting%s: %s' % ('s' if len(unknown) > 1 else '', ', '.join(unknown)))
    note = None
    try:
        files = {row['name']: row for row in session.query(FILE_SETTINGS_SQL, (list(names),))}
    # A refused read (insufficient privilege) means: compare with the running values; anything else is raised.
    except Exception as exc:  # pylint: disable=broad-except
        if not _is_permission_error(exc):
            raise
        files = None
        note = ('pg_file_settings is not readable by %s (superusers only): compared with the running values, so a '
                'value written but not yet applied is written again' % session.params.get('login_user'))
    for name, row in rows.items():
        entry = (files or {}).get(name)
        # An entry waiting for a restart carries an error ('setting could not be applied') until the restart.
        waiting = row['context'] in RESTART_CONTEXTS and row['pending_restart']
        usable = entry is not None and (not entry['error'] or waiting)
        if files is not None and usable:
            row['target'] = entry['setting']
            row['target_source'] = '%s:%s' % (entry['sourcefile'], entry['sourceline'])
        else:
            # In no file (or pg_file_settings unreadable): the value it runs with, its default or one given on the
            # server's command line, is what it keeps.
            row['target'] = row['setting']
            row['target_source'] = 'running'
    return rows, note


def _is_permission_error(exc):
    return getattr(exc, 'pgcode', None) == '42501'


def plan(wanted, state):
    """The settings whose value must change: [{'name', 'before', 'after', 'context'}]."""
    changes = []
    for name in sorted(wanted):
        row = state[name]
        if row['context'] in UNSETTABLE_CONTEXTS:
            raise ConfigurationError('%s cannot be set: it is fixed when PostgreSQL is built or initialised' % name)
        want = _norm(row, wanted[name])
        target = row['target']
        try:
            have = _norm(row, target)
        except ConfigurationError:
            have = None
        if have != want:
            changes.append(dict(name=name, before=target, after=str(wanted[name]), context=row['context']))
    return changes


def alter_statement(name, value):
    """ALTER SYSTEM SET for ``name`` (dotted names of extensions included) with ``value`` as a literal."""
    return sql.SQL('ALTER SYSTEM SET {} = {}').format(sql.Identifier(*name.split('.')), sql.Literal(str(value)))


def wait_for_reload(session, wanted, names, timeout=10.0):
    """After pg_reload_conf(): wait until this session sees the reloaded values of ``names`` (the postmaster
    signals every backend; ours reads the files again before its next statement). False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        rows = {row['name']: row for row in session.query(SETTINGS_SQL, (list(names),))}
        if all(_norm(rows[n], rows[n]['setting']) == _norm(rows[n], wanted[n]) for n in names):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def restart_needed(session, wanted):
    """Setting names that wait for a restart: those of ``wanted`` PostgreSQL applies at start only whose running
    value differs, and every setting pg_settings flags ``pending_restart`` (also those changed by others)."""
    rows = {row['name']: row for row in session.query(SETTINGS_SQL, (list(wanted),))}
    names = set(row['name'] for row in session.query(PENDING_RESTART_SQL))
    for name, row in rows.items():
        if row['context'] in RESTART_CONTEXTS and _norm(row, row['setting']) != _norm(row, wanted[name]):
            names.add(name)
    return sorted(names)


def running_values(session, names):
    return {row['name']: dict(setting=row['setting'], unit=row['unit'], context=row['context'],
                              pending_restart=row['pending_restart'])
            for row in session.query(SETTINGS_SQL, (list(names),))}


def validate_settings(wanted):
    """The settings with lower-case names; ConfigurationError for an empty dict, a name that is no setting name
    or a value that is not one scalar (checked before any connection)."""
    if not wanted:
        raise ConfigurationError('settings is empty: name at least one setting')
    clean = dict((str(name).strip().lower(), value) for name, value in wanted.items())
    for name, value in clean.items():
        if not re.match(r'^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$', name):
            raise ConfigurationError('%r is not a setting name' % name)
        if value is None or isinstance(value, (dict, list)):
            raise ConfigurationError('%s: give the value as one string, number or boolean' % name)
    return clean


def apply_settings(session, wanted, check_mode=False, reload=True):
    """Write what differs with ALTER SYSTEM, reload when one of them a reload applies, and report.

    Returns a dict: ``changes``, ``queries`` (what was run, or would be under check mode), ``reloaded``,
    ``pending_restart`` (names), ``settings`` (running values after the call), ``notes``."""
    wanted = validate_settings(wanted)
    state, note = read_state(session, wanted)
    notes = [note] if note else []
    # A value the type cannot hold is refused before anything is written.
    for name, value in wanted.items():
        try:
            normalize(value, state[name]['vartype'], state[name]['unit'], state[name]['enumvals'])
        except ConfigurationError as exc:
            raise ConfigurationError('%s: %s' % (name, exc)) from None
    changes = plan(wanted, state)
    queries = []
    for change in changes:
        statement = alter_statement(change['name'], wanted[change['name']])
        queries.append(statement.as_string(session.conn))
        if not check_mode:
            session.query(statement)
    reloadable = [c['name'] for c in changes if c['context'] not in RESTART_CONTEXTS]
    reloaded = False
    if changes and reload:
        queries.append('SELECT pg_reload_conf()')
        if not check_mode:
            session.query('SELECT pg_catalog.pg_reload_conf()')
            reloaded = True
            if reloadable and not wait_for_reload(session, wanted, reloadable):
                notes.append('the server had not applied %s 10 seconds after the reload' % ', '.join(reloadable))
    elif changes and reloadable:
        notes.append('reload is off: %s take effect at the next reload' % ', '.join(reloadable))
    if check_mode:
        pending = sorted(set(restart_needed(session, wanted))
                         | set(c['name'] for c in changes if c['context'] in RESTART_CONTEXTS))
    else:
        pending = restart_needed(session, wanted)
    return dict(changes=changes, queries=queries, reloaded=reloaded, pending_restart=pending,
                restart_required=bool(pending), settings=running_values(session, wanted), notes=notes)
