"""The review desk (``charwatch serve``): the flag queue, one page per detection with its
evidence side by side, and the analysts' actions as forms.

* :mod:`~reports.desk.app`: the Flask app factory and its routes;
* :mod:`~reports.desk.auth`: session key, CSRF tokens, login limiter;
* :mod:`~reports.desk.queries`: the queue's filters, sorts and keyset paging, and the data of
  one detection's page;
* ``templates/`` (Jinja2, autoescaped) and ``static/`` (one CSS and one JS file, served here).
"""

from reports.desk.app import create_app

__all__ = ["create_app"]
