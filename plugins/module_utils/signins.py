# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Suspicious sign-ins in Supabase Auth's ``auth.audit_log_entries`` (the guides' weekly "suspicious IP
addresses"): bursts of sign-ins from one address, many accounts signing in from one address, one account
signing in from many addresses, and accounts signing in from addresses they never used before.

A sign-in is a row whose ``payload->>'action'`` is ``login`` (Supabase Auth writes it for every successful
sign-in: password, one-time code, magic link, OAuth, SSO; ``mfa_code_login`` is the second factor of a
sign-in already logged, so it is not counted again). The account is ``payload->>'actor_id'``, shown with
``payload->>'actor_username'`` (its e-mail or phone) where Auth wrote one; the address is the ``ip_address``
column. Rows without an address or an account are left out.

The database does the counting: a sliding window of ``minutes`` over each address's (or account's) sign-ins
with window functions, so only one row per address or account comes back, and at most ``TOP`` of them.

- Sign-ins in any window of ``minutes``: ``count(*) OVER (... RANGE BETWEEN minutes PRECEDING AND CURRENT
  ROW)`` at every sign-in; the peak is the largest.
- Distinct accounts (or addresses) in any such window: each pair (address, account) is present in the windows
  that end in ``[t, t + minutes]`` after each of its sign-ins ``t``; runs of sign-ins less than ``minutes``
  apart merge into one span, every span opens (+1) and closes (-1), and the running sum of those edges per
  address is the number of distinct accounts in the window ending there. Its largest value is the peak.
"""

from __future__ import annotations

from ansible_collections.appcare.maintenance.plugins.module_utils import checks as C

# How many addresses or accounts a query returns at most (the worst first); findings and facts name these.
TOP = 50

SIGNIN_CHECKS = ['auth_signin_burst', 'auth_address_accounts', 'auth_account_addresses', 'auth_account_new_addresses']

DEFAULT_THRESHOLDS = {
    # sign-ins from one address inside one window of auth_signin_window_minutes
    'auth_signin_burst': {'warning': 30, 'critical': 150, 'direction': C.ABOVE, 'unit': 'count'},
    # distinct accounts signing in from one address inside one window
    'auth_address_accounts': {'warning': 10, 'critical': 50, 'direction': C.ABOVE, 'unit': 'count'},
    # distinct addresses one account signs in from inside one window
    'auth_account_addresses': {'warning': 3, 'critical': 10, 'direction': C.ABOVE, 'unit': 'count'},
    # addresses one account signed in from inside log_window_hours and not in the auth_lookback_days before
    'auth_account_new_addresses': {'warning': 2, 'critical': None, 'direction': C.ABOVE, 'unit': 'count'},
}

DEFAULT_WINDOW_MINUTES = 15

_LOGINS = """
    SELECT {key} AS key, {other} AS other, created_at AS t, payload->>'actor_username' AS username
      FROM auth.audit_log_entries
     WHERE payload->>'action' = 'login' AND created_at >= now() - %(window)s::interval
       AND coalesce(ip_address, '') <> '' AND coalesce(payload->>'actor_id', '') <> ''"""

# One row per address (key = address, other = account) or per account (key = account, other = address): its
# sign-ins in the log window, the peak of sign-ins and of distinct others in one sliding window of %(minutes)s,
# when that peak window ended, first and last sign-in, and how many keys pass each limit. By address: the TOP
# rows with the most sign-ins in one window and the TOP with the most accounts in one window (each check sees its
# own worst); by account: the TOP with the most addresses in one window.
_PEAKS = """
WITH logins AS ({logins}),
counted AS (
    SELECT key, t, count(*) OVER (PARTITION BY key ORDER BY t
                                  RANGE BETWEEN %(minutes)s::interval PRECEDING AND CURRENT ROW) AS n
      FROM logins),
burst AS (
    SELECT DISTINCT ON (key) key, n AS peak_sign_ins, t AS peak_sign_ins_at FROM counted ORDER BY key, n DESC, t),
runs AS (
    SELECT key, other, t,
           CASE WHEN lag(t) OVER (PARTITION BY key, other ORDER BY t) >= t - %(minutes)s::interval
                THEN 0 ELSE 1 END AS opens
      FROM logins),
spans AS (
    SELECT key, other, min(t) AS opened, max(t) + %(minutes)s::interval AS closed
      FROM (SELECT key, other, t, sum(opens) OVER (PARTITION BY key, other ORDER BY t ROWS UNBOUNDED PRECEDING) AS span
              FROM runs) numbered
     GROUP BY key, other, span),
edges AS (
    SELECT key, opened AS at, 1 AS delta FROM spans
    UNION ALL
    SELECT key, closed, -1 FROM spans),
present AS (
    SELECT key, at, sum(delta) OVER (PARTITION BY key ORDER BY at, delta DESC ROWS UNBOUNDED PRECEDING) AS n
      FROM edges),
spread AS (
    SELECT DISTINCT ON (key) key, n AS peak_others, at AS peak_others_at FROM present ORDER BY key, n DESC, at),
totals AS (
    SELECT key, count(*) AS sign_ins, count(DISTINCT other) AS others, min(t) AS first, max(t) AS last,
           max(username) AS username
      FROM logins GROUP BY key)
SELECT * FROM (
    SELECT t.key, t.sign_ins, t.others, t.first, t.last, t.username, b.peak_sign_ins, b.peak_sign_ins_at,
           s.peak_others, s.peak_others_at,
           count(*) OVER () AS keys,
           count(*) FILTER (WHERE b.peak_sign_ins > %(sign_ins_limit)s) OVER () AS keys_over_sign_ins,
           count(*) FILTER (WHERE s.peak_others > %(others_limit)s) OVER () AS keys_over_others,
           row_number() OVER (ORDER BY b.peak_sign_ins DESC, s.peak_others DESC, t.key) AS rank_sign_ins,
           row_number() OVER (ORDER BY s.peak_others DESC, b.peak_sign_ins DESC, t.key) AS rank_others
      FROM totals t JOIN burst b USING (key) JOIN spread s USING (key)) ranked
 WHERE {where}
 ORDER BY {order}
"""

# One row per account that signed in inside the log window: how many addresses it used there that it did not
# use in the %(lookback)s before (new), whether it signed in at all in those days (has_history); the TOP
# accounts with history and the most new addresses first, with the totals over all accounts.
_NEW_ADDRESSES = """
WITH recent AS (
    SELECT payload->>'actor_id' AS account, ip_address AS address, count(*) AS sign_ins,
           min(created_at) AS first, max(created_at) AS last, max(payload->>'actor_username') AS username
      FROM auth.audit_log_entries
     WHERE payload->>'action' = 'login' AND created_at >= now() - %(window)s::interval
       AND coalesce(ip_address, '') <> '' AND coalesce(payload->>'actor_id', '') <> ''
     GROUP BY 1, 2),
known AS (
    SELECT DISTINCT payload->>'actor_id' AS account, ip_address AS address
      FROM auth.audit_log_entries
     WHERE payload->>'action' = 'login' AND created_at < now() - %(window)s::interval
       AND created_at >= now() - %(window)s::interval - %(lookback)s::interval
       AND coalesce(ip_address, '') <> '' AND coalesce(payload->>'actor_id', '') <> ''),
accounts AS (
    SELECT r.account, max(r.username) AS username,
           count(*) FILTER (WHERE k.address IS NULL) AS new_addresses,
           (array_agg(r.address ORDER BY r.first, r.address) FILTER (WHERE k.address IS NULL))[1:20] AS addresses,
           sum(r.sign_ins) FILTER (WHERE k.address IS NULL)::bigint AS sign_ins,
           min(r.first) FILTER (WHERE k.address IS NULL) AS first,
           max(r.last) FILTER (WHERE k.address IS NULL) AS last,
           EXISTS (SELECT 1 FROM known h WHERE h.account = r.account) AS has_history
      FROM recent r LEFT JOIN known k ON k.account = r.account AND k.address = r.address
     GROUP BY r.account)
SELECT account, username, new_addresses, addresses, sign_ins, first, last, has_history,
       count(*) FILTER (WHERE has_history) OVER () AS judged,
       count(*) FILTER (WHERE NOT has_history) OVER () AS without_history,
       count(*) FILTER (WHERE has_history AND new_addresses > %(limit)s) OVER () AS over
  FROM accounts
 ORDER BY has_history DESC, new_addresses DESC, account
 LIMIT %(top)s
"""


def _limit(spec):
    """The first level at which a check fires, as a number SQL can compare with (no limit: never)."""
    limit = C.first_limit(spec)
    return limit if limit is not None else float('inf')


def peaks_sql(by):
    """The SQL of the sliding-window peaks, one row per ``by`` (``address`` or ``account``), worst first:
    ordered by sign-ins in one window for addresses, by distinct addresses in one window for accounts."""
    if by == 'address':
        key, other, order = 'ip_address', "payload->>'actor_id'", 'rank_sign_ins'
        where = 'rank_sign_ins <= %(top)s OR rank_others <= %(top)s'
    elif by == 'account':
        key, other, order, where = "payload->>'actor_id'", 'ip_address', 'rank_others', 'rank_others <= %(top)s'
    else:
        raise ValueError('by must be address or account, got %r' % (by,))
    return _PEAKS.format(logins=_LOGINS.format(key=key, other=other), order=order, where=where)


def peaks_args(args, minutes, thresholds, by):
    """The query arguments of ``peaks_sql(by)``: ``args`` (window, lookback) plus the sliding window and the
    limits that count the rows over them."""
    if by == 'address':
        sign_ins, others = thresholds['auth_signin_burst'], thresholds['auth_address_accounts']
    else:
        sign_ins, others = {}, thresholds['auth_account_addresses']
    return dict(args, minutes='%s seconds' % int(round(minutes * 60)), top=TOP,
                sign_ins_limit=_limit(sign_ins), others_limit=_limit(others))


def new_addresses_sql():
    return _NEW_ADDRESSES


def new_addresses_args(args, thresholds):
    return dict(args, top=TOP, limit=_limit(thresholds['auth_account_new_addresses']))


def _iso(value):
    return value.isoformat() if value is not None else None


def _who(row):
    """How a message names an account: its user name (e-mail or phone) and id, or the id alone."""
    return '%s (%s)' % (row['username'], row['key']) if row.get('username') else row['key']


def _fired(rows, spec, value_key):
    """The rows whose ``value_key`` fires ``spec``, highest first, at most TOP."""
    return sorted((row for row in rows if C.past_first_limit(spec, row[value_key])),
                  key=lambda row: (-row[value_key], row['key']))[:TOP]


def address_findings(thresholds, rows, minutes, hours, checks):
    """Findings of ``auth_signin_burst`` and ``auth_address_accounts`` (those of them in ``checks``) from the rows of
    ``peaks_sql('address')``: one per address that fires, else one summary judged on the highest value."""
    out = []
    window = _minutes(minutes)
    total = rows[0]['keys'] if rows else 0
    if 'auth_signin_burst' in checks:
        spec = thresholds['auth_signin_burst']
        fired = _fired(rows, spec, 'peak_sign_ins')
        more = (rows[0]['keys_over_sign_ins'] - len(fired)) if rows else 0
        for row in fired:
            out.append(C.judge(
                thresholds, 'auth_signin_burst', row['peak_sign_ins'],
                '{value} sign-ins from %s within %s (window ending %s); %d sign-in(s) for %d account(s) from it in the '
                'last %s h, first %s, last %s%s; block the address if the accounts are not one office or NAT'
                % (row['key'], window, _iso(row['peak_sign_ins_at']), row['sign_ins'], row['others'], _hours(hours),
                   _iso(row['first']), _iso(row['last']), _more(more)),
                obj='address=%s' % row['key'], **_address_extra(row)))
        if not fired:
            top = max(rows, key=lambda r: r['peak_sign_ins'], default=None)
            out.append(C.judge(
                thresholds, 'auth_signin_burst', top['peak_sign_ins'] if top else 0,
                ('at most {value} sign-ins from one address (%s) within %s in the last %s h (%d address(es))'
                 % (top['key'], window, _hours(hours), total)) if top
                else 'no sign-ins in the last %s h' % _hours(hours)))
    if 'auth_address_accounts' in checks:
        spec = thresholds['auth_address_accounts']
        fired = _fired(rows, spec, 'peak_others')
        more = (rows[0]['keys_over_others'] - len(fired)) if rows else 0
        for row in fired:
            out.append(C.judge(
                thresholds, 'auth_address_accounts', row['peak_others'],
                '{value} different accounts signed in from %s within %s (window ending %s), %d in the last %s h with '
                '%d sign-in(s), first %s, last %s%s: credential stuffing or a shared device; block the address and '
                'reset those accounts\' sessions unless it is a known office or NAT'
                % (row['key'], window, _iso(row['peak_others_at']), row['others'], _hours(hours), row['sign_ins'],
                   _iso(row['first']), _iso(row['last']), _more(more)),
                obj='address=%s' % row['key'], **_address_extra(row)))
        if not fired:
            top = max(rows, key=lambda r: r['peak_others'], default=None)
            out.append(C.judge(
                thresholds, 'auth_address_accounts', top['peak_others'] if top else 0,
                ('at most {value} account(s) signed in from one address (%s) within %s in the last %s h'
                 % (top['key'], window, _hours(hours))) if top else 'no sign-ins in the last %s h' % _hours(hours)))
    return out


def account_findings(thresholds, rows, minutes, hours):
    """Findings of ``auth_account_addresses`` from the rows of ``peaks_sql('account')``."""
    out = []
    window = _minutes(minutes)
    spec = thresholds['auth_account_addresses']
    fired = _fired(rows, spec, 'peak_others')
    more = (rows[0]['keys_over_others'] - len(fired)) if rows else 0
    for row in fired:
        out.append(C.judge(
            thresholds, 'auth_account_addresses', row['peak_others'],
            'account %s signed in from {value} different addresses within %s (window ending %s); %d address(es) and '
            '%d sign-in(s) in the last %s h, first %s, last %s%s: shared or stolen credentials or tokens; sign the '
            'account out everywhere and have its owner change the password'
            % (_who(row), window, _iso(row['peak_others_at']), row['others'], row['sign_ins'], _hours(hours),
               _iso(row['first']), _iso(row['last']), _more(more, 'account(s)')),
            obj='account=%s' % row['key'], account=row['key'], username=row['username'], sign_ins=row['sign_ins'],
            addresses=row['others'], first=_iso(row['first']), last=_iso(row['last'])))
    if not fired:
        top = max(rows, key=lambda r: r['peak_others'], default=None)
        out.append(C.judge(
            thresholds, 'auth_account_addresses', top['peak_others'] if top else 0,
            ('at most {value} address(es) for one account within %s in the last %s h (%d account(s) signed in)'
             % (window, _hours(hours), top['keys'])) if top else 'no sign-ins in the last %s h' % _hours(hours)))
    return out


def new_address_findings(thresholds, rows, hours, lookback_days):
    """Findings of ``auth_account_new_addresses`` from the rows of ``new_addresses_sql()``: one per account with
    history (a sign-in in the ``lookback_days`` before the window) whose new addresses fire, else a summary.
    Accounts without such history are not judged (every address of theirs is new) and only counted."""
    judged = rows[0]['judged'] if rows else 0
    without = rows[0]['without_history'] if rows else 0
    spec = thresholds['auth_account_new_addresses']
    fired = [r for r in rows if r['has_history'] and C.past_first_limit(spec, r['new_addresses'])]
    more = (rows[0]['over'] - len(fired)) if rows else 0
    out = []
    for row in fired:
        who = _who(dict(row, key=row['account']))
        out.append(C.judge(
            thresholds, 'auth_account_new_addresses', row['new_addresses'],
            'account %s signed in from {value} address(es) in the last %s h that it did not use in the %d days before: '
            '%s (%d sign-in(s), first %s, last %s)%s; confirm with its owner, else sign it out everywhere and reset '
            'its password' % (who, _hours(hours), lookback_days, ', '.join(row['addresses'] or []), row['sign_ins'] or 0,
                              _iso(row['first']), _iso(row['last']), _more(more, 'account(s)')),
            obj='account=%s' % row['account'], account=row['account'], username=row['username'],
            addresses=list(row['addresses'] or []), first=_iso(row['first']), last=_iso(row['last'])))
    if not fired:
        history = [r for r in rows if r['has_history']]
        top = max(history, key=lambda r: r['new_addresses'], default=None)
        value = top['new_addresses'] if top else 0
        out.append(C.judge(
            thresholds, 'auth_account_new_addresses', value,
            'at most {value} new address(es) for one account in the last %s h against the %d days before (%d '
            'account(s) with earlier sign-ins judged; %d without, not judged)' % (_hours(hours), lookback_days, judged,
                                                                                  without),
            accounts_judged=judged, accounts_without_history=without))
    return out


def address_rows(rows):
    """The facts of ``peaks_sql('address')`` rows, for the module's result."""
    return [dict(address=r['key'], sign_ins=r['sign_ins'], accounts=r['others'], peak_sign_ins=r['peak_sign_ins'],
                 peak_accounts=r['peak_others'], first=_iso(r['first']), last=_iso(r['last'])) for r in rows[:TOP]]


def account_rows(rows):
    """The facts of ``peaks_sql('account')`` rows (accounts seen from more than one address), for the result."""
    return [dict(account=r['key'], username=r['username'], sign_ins=r['sign_ins'], addresses=r['others'],
                 peak_addresses=r['peak_others'], first=_iso(r['first']), last=_iso(r['last']))
            for r in rows if r['others'] > 1]


def _address_extra(row):
    return dict(address=row['key'], sign_ins=row['sign_ins'], accounts=row['others'], first=_iso(row['first']),
                last=_iso(row['last']))


def _more(count, what='address(es)'):
    return '; %d more %s over the threshold, not listed' % (count, what) if count > 0 else ''


def _minutes(minutes):
    return '%s minute%s' % (_number(minutes), '' if minutes == 1 else 's')


def _hours(hours):
    return _number(hours)


def _number(value):
    return str(int(value)) if float(value).is_integer() else str(value)


def validate_minutes(minutes):
    """The sliding window must be a positive number of minutes, at most a day."""
    if minutes is None or minutes <= 0 or minutes > 24 * 60:
        raise ValueError('auth_signin_window_minutes must be more than 0 and at most 1440 (a day), got %s' % minutes)
    return minutes
