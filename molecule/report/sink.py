# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A webhook sink for the report scenario: appends every POST body to a file, one JSON per line."""

import http.server
import sys

PORT, OUT = int(sys.argv[1]), sys.argv[2]


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the http.server interface
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        with open(OUT, 'ab') as handle:
            handle.write(body + b'\n')
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(('127.0.0.1', PORT), Sink).serve_forever()
