# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run SQL against a scenario's server as its superuser and print the rows as JSON (molecule prepare/verify)."""

import json
import sys

import psycopg2

port, dbname, statement = sys.argv[1], sys.argv[2], sys.argv[3]
conn = psycopg2.connect(host='127.0.0.1', port=int(port), user='postgres', password='test-superuser-secret',
                        dbname=dbname)
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute(statement)
    rows = cur.fetchall() if cur.description else []
conn.close()
print(json.dumps(rows, default=str))
