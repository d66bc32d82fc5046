"""Views the performance-insight tests request (mounted at /perf/ by tests/urls.py): views that
run SQL statements, repeat one (an N+1), use the cache, and their async twins."""
