# -*- coding: utf-8 -*-
# Copyright: appcare.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # O(severity) of every module that returns findings (checks.severity_spec, checks.apply_severity).
    DOCUMENTATION = r'''
options:
  severity:
    description:
      - "The level a check's findings have when it fires, per check name - V(info) (advice, never an alert),
        V(warning) or V(critical) - replacing the level this module gives them, for example
        C({rls_enabled_no_policy: warning}) to act on tables that no API role can read, or
        C({extension_in_public: info}) to keep a known exception as advice."
      - Only findings that fired change; a check that found nothing stays V(ok) and one that could not measure
        stays V(unknown). A changed finding keeps the module's own level in C(default_status).
      - Names are matched exactly; a name this module does not produce is ignored, so one dict can serve every
        module (the roles pass the inventory variable C(appcare_severity)).
    type: dict
    default: {}
'''
