/**
 * examples/server/health_flask.py and health_django.py, as a user drops them into a project:
 * served by the real Flask and Django (Debian's python3-flask, python3-django), they answer
 * /health/ready with the release named in its REVISION file, in the two places the readiness
 * gate reads (the X-App-Version header and the JSON `version`).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PYTHON, scratchDirectory } from './migrate/python-project.js';

const EXAMPLES = new URL('../../examples/server/', import.meta.url).pathname;

/** A release directory with the example, a REVISION file and `script`, run there; it prints status, header, body (one line), then anything more. */
function serveOnce(example: string, script: string): { status: number; header: string; body: string; more: string[] } {
  const release = scratchDirectory('gd-health-example');
  copyFileSync(join(EXAMPLES, example), join(release, example));
  writeFileSync(join(release, 'REVISION'), 'v7\n');
  const out = execFileSync(PYTHON, ['-c', script], { cwd: release, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', PYTHONPATH: release } });
  const [status = '', header = '', body = '', ...more] = out.trim().split('\n');
  return { status: Number(status), header, body, more };
}

describe('the /health/ready examples users copy', () => {
  it('Flask: register(app) answers 200 naming the release from REVISION', () => {
    const answer = serveOnce(
      'health_flask.py',
      `
from flask import Flask
import health_flask
app = Flask(__name__)
health_flask.register(app)
r = app.test_client().get("/health/ready")
print(r.status_code); print(r.headers.get("X-App-Version")); print(r.get_data(as_text=True))
`,
    );
    expect(answer).toMatchObject({ status: 200, header: 'v7' });
    expect(JSON.parse(answer.body)).toMatchObject({ version: 'v7' });
  });

  it('Django: the ready view in urls.py answers 200 naming the release; a Host outside ALLOWED_HOSTS gets the 400 health-host is for', () => {
    const answer = serveOnce(
      'health_django.py',
      `
import os, sys, types
from django.conf import settings
settings.configure(BASE_DIR=os.getcwd(), ALLOWED_HOSTS=["www.example.com"], ROOT_URLCONF="urls", DEBUG=False, SECRET_KEY="x", MIDDLEWARE=["django.middleware.common.CommonMiddleware"])
import django
django.setup()
from django.urls import path
from health_django import ready
urls = types.ModuleType("urls"); urls.urlpatterns = [path("health/ready", ready)]; sys.modules["urls"] = urls
from django.test import Client
r = Client(HTTP_HOST="www.example.com").get("/health/ready")
print(r.status_code); print(r["X-App-Version"]); print(r.content.decode())
print(Client(HTTP_HOST="127.0.0.1").get("/health/ready").status_code)
`,
    );
    expect(answer).toMatchObject({ status: 200, header: 'v7', more: ['400'] });
    expect(JSON.parse(answer.body)).toMatchObject({ version: 'v7' });
  });
});
