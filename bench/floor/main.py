"""The floor: the smallest functions-framework HTTP function. It answers any request at once.

Its cold start and per-request cost are what the framework itself costs; nothing a function
on this framework does can be faster.
"""

import flask
import functions_framework


@functions_framework.http
def webhook(request: flask.Request) -> str:
    return "ok"
