"""The Flask half of the migration demo: the original app, on Flask-Session 0.8 and Redis.

It shares Redis, the cookie and the serialization with the Rust app (session-example), so
either side reads and writes the other's sessions. Started by the demo binary
(`cargo xtask demo`), which sets:

  FLASK_PORT           the port to listen on (127.0.0.1)
  REDIS_URL            the shared Redis
  SECRET_KEY           the shared secret (used when SESSION_USE_SIGNER is on)
  SESSION_COOKIE_NAME  the shared cookie name (default "session")
  SESSION_KEY_PREFIX   the shared key prefix (default "session:")

Routes: GET / (the session as JSON), POST /login?user=NAME, POST /counter, POST /logout,
GET /health; the same contract as the Rust example's.
"""

import os

import redis
from flask import Flask, jsonify, request, session
from flask_session import Session

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ["SECRET_KEY"],
    SESSION_TYPE="redis",
    SESSION_REDIS=redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")),
    SESSION_KEY_PREFIX=os.environ.get("SESSION_KEY_PREFIX", "session:"),
    SESSION_COOKIE_NAME=os.environ.get("SESSION_COOKIE_NAME", "session"),
    # Flask-Session 0.8's defaults, written out because the Rust side must match them:
    # msgpack (msgspec), 32-byte ids, unsigned ids, permanent sessions of 31 days.
    SESSION_SERIALIZATION_FORMAT="msgpack",
    SESSION_ID_LENGTH=32,
    SESSION_USE_SIGNER=False,
    SESSION_PERMANENT=True,
)
Session(app)


@app.get("/")
def show():
    response = jsonify(dict(session))
    response.headers["Cache-Control"] = "no-store"
    return response


@app.post("/login")
def login():
    user = request.args.get("user", "").strip()
    if not user:
        return "missing user: POST /login?user=NAME", 400
    session["user"] = user
    # A new id at login, as the Rust side does.
    app.session_interface.regenerate(session)
    return f"logged in as {user}"


@app.post("/counter")
def counter():
    session["counter"] = int(session.get("counter", 0)) + 1
    return str(session["counter"])


@app.post("/logout")
def logout():
    session.clear()
    return "logged out"


@app.get("/health")
def health():
    return "ok"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["FLASK_PORT"]), threaded=True)
