"""Views and URLs the response-time middleware tests request (mounted at /mw/ by tests/urls.py)."""
