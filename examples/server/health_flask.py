"""/health/ready for a Flask app: 200 with the release's name once the app can serve.

graceful-deploy writes a REVISION file into each release; the readiness gate checks that the
new workers answer with that name (X-App-Version header or the JSON `version`).
"""
import os

from flask import Flask, jsonify

REVISION_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "REVISION")
try:
    with open(REVISION_FILE) as handle:
        REVISION = handle.read().strip()
except OSError:
    REVISION = "dev"


def register(app: Flask) -> None:
    @app.get("/health/ready")
    def ready():
        # Check what "ready" means for you here (database reachable, caches warm ...).
        response = jsonify(status="ready", version=REVISION)
        response.headers["X-App-Version"] = REVISION
        return response
