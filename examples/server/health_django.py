"""/health/ready for a Django project: add to urls.py:

    from health_django import ready
    urlpatterns += [path("health/ready", ready)]

The action requests it on the host (127.0.0.1): add the host the probe uses to ALLOWED_HOSTS, or
give the action `health-host: www.example.com` so the request carries a Host Django accepts.

The probe speaks plain http and does not follow redirects: with SECURE_SSL_REDIRECT = True,
exempt this path in settings.py, or every check fails with a redirect to https:

    SECURE_REDIRECT_EXEMPT = [r"^health/ready$"]
"""
import os

from django.conf import settings
from django.http import JsonResponse

_REVISION_FILE = os.path.join(settings.BASE_DIR, "REVISION")
try:
    with open(_REVISION_FILE) as handle:
        REVISION = handle.read().strip()
except OSError:
    REVISION = "dev"


def ready(request):
    # Check what "ready" means for you here (a cheap database query, say).
    response = JsonResponse({"status": "ready", "version": REVISION})
    response["X-App-Version"] = REVISION
    return response
