# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capacity forecast's arithmetic and the chart, without files."""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET

from ansible_collections.appcare.maintenance.plugins.module_utils import files as F
from ansible_collections.appcare.maintenance.plugins.module_utils import history as H

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def entries(values, step_days=1.0):
    return [{'_at': T0 + datetime.timedelta(days=i * step_days), 'database_size': v} for i, v in enumerate(values)]


def test_fit_exact_and_noisy():
    assert H.fit([(0, 1.0), (1, 3.0), (2, 5.0)]) == (2.0, 1.0, 1.0)
    slope, _intercept, r2 = H.fit([(0, 0.0), (1, 1.2), (2, 1.8), (3, 3.1)])
    assert 0.95 < slope < 1.05 and 0.95 < r2 < 1.0
    assert H.fit([(1, 1.0), (1, 2.0)]) == (None, None, None)


def test_forecast_days_from_the_newest_point():
    result = H.forecast(entries([100, 110, 120, 130]), 'database_size', 1000, 50, 3)
    # 500 is the threshold; the line is at 130 on day 3 and grows 10 a day: 37 days
    assert result['growth_per_day'] == 10 and result['days_left'] == 37.0
    assert result['reaches_on'].startswith('2026-02-10')  # day 3 is 4 January


def test_forecast_without_quota_or_history():
    assert H.forecast(entries([1, 2, 3]), 'database_size', None, 85, 3)['reason'] == 'no quota given: growth only'
    few = H.forecast(entries([1, 2]), 'database_size', 10, 85, 3)
    assert few['enough_history'] is False and '2 measurement(s)' in few['reason']
    same_moment = H.forecast(entries([1, 2, 3], step_days=0), 'database_size', 10, 85, 3)
    assert same_moment['enough_history'] is False


def test_safe_names_and_chart():
    assert H.file_stem('ims/prod db') == 'ims_prod_db' and H.file_stem('') == 'target'
    # one for one, unlike the backup directory rule (files.safe_name): existing history files keep their names
    assert H.file_stem('_ims (prod)') == '_ims__prod_' and F.safe_name('_ims (prod)') == 'ims_prod'
    history = entries([100, 120, 140])
    result = H.forecast(history, 'database_size', 1000, 85, 3)
    svg = H.svg_chart(history, 'database_size', result, 'ims <prod>')
    root = ET.fromstring(svg)
    assert root.tag.endswith('svg') and 'ims &lt;prod&gt;' in svg and 'polyline' in svg
    lonely = H.svg_chart(history[:1], 'database_size', result, 'ims')
    assert 'not enough history yet' in lonely
