"""`locust -f loadtests/locustfile.py --host URL --lt-profile sessions --lt-shape spike` — the plain Locust route.

The user class, the shape and the hooks live in `loadtests._locust`; `python -m loadtests run` starts
Locust on this same file.
"""

from loadtests._locust import ChatUser, YamlShape  # noqa: F401  (Locust finds them here)
