"""The demo "user-behaviour service" that rewind's demo, tests and benchmarks run against.

Public names: `create_app` (a Flask app factory). Serve it with
`gunicorn --chdir <repo> ci.demo_api.app:app`.
"""

from ci.demo_api.app import create_app

__all__ = ["create_app"]
