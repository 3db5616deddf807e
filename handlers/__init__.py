"""What we do about a trigger: the business, with no web-framework imports.

Handlers are keyed by the trigger's ``kind`` (``records.HANDLERS``); today there is one,
``pre-deploy``.
"""
