"""A Flask app with the real Flask-Session 0.8, driven step by step by the Rust interop tests.

Usage: python interop.py STEP [SID]

The backend comes from SESSION_TYPE (redis, memcached, sqlalchemy, mongodb, dynamodb,
filesystem, cachelib) and the usual connection variables (REDIS_URL, MEMCACHED_SERVERS,
SQL_URL, MONGODB_URL, DYNAMODB_ENDPOINT, SESSION_DYNAMODB_TABLE, SESSION_KEY_PREFIX,
SESSION_MONGODB_DB, ...). The filesystem and cachelib types keep pickles in SESSION_FILE_DIR
(cachelib: a FileSystemCache there, hashing file names with SESSION_FILE_HASH, sha256 or
md5), with SESSION_FILE_THRESHOLD and SESSION_FILE_MODE. SESSION_PERMANENT and
PERMANENT_SESSION_LIFETIME (seconds) apply to every type; SESSION_SERIALIZATION_FORMAT (json:
the session holds only JSON's types) and SESSION_USE_SIGNER (true: signed cookies, with
SECRET_KEY "interop-secret" unless SECRET_KEY is set; SECRET_KEY_FALLBACKS, comma-separated, is
Flask 3.1's list of old keys) to every type but the pickle ones. Each step prints one JSON object
on stdout:

  login          Flask creates a session holding Flask-typed data; prints the new sid.
                 With pickle (filesystem, cachelib) the data also holds tuples, sets, dates,
                 naive and fixed-offset datetimes, timedeltas, big ints, tuple keys.
  login_markup   Flask creates a session whose flash is a markupsafe.Markup (pickle only).
  get SID        Flask reads the session and checks that every typed value kept its type.
  counter SID    Flask increments `counter`.
  prune_clear    (pickle only) What cachelib's own upkeep does to the directory: opens the
                 FileSystemCache (a recount), writes entries past SESSION_FILE_THRESHOLD (a
                 prune), then clear()s it; prints the count on opening, the warnings cachelib
                 logged and the names left. The same on a scratch directory holding a plain
                 folder, as a control: cachelib counts and trips over such a folder.
  raw SID        (SID may be a signed cookie value) Reads what the store holds for SID without Flask-Session: whether the stored
                 bytes are exactly what msgspec writes for the decoded dict, and the TTL;
                 with pickle, the file's dict, protocol, mode and TTL, cachelib's count file
                 and the number of entries and temporary files in the directory.
"""

import datetime
import hashlib
import json
import os
import pickle
import stat
import sys
import time

import msgspec
from flask import Flask, flash, get_flashed_messages, jsonify, request, session
from flask_session import Session

PREFIX = os.environ.get("SESSION_KEY_PREFIX", "session:")
LIFETIME = int(os.environ.get("PERMANENT_SESSION_LIFETIME", str(31 * 24 * 3600)))
WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc)
PICKLE = os.environ.get("SESSION_TYPE") in ("filesystem", "cachelib")
# SESSION_SERIALIZATION_FORMAT=json: msgspec.json, which keeps only JSON's types, so the
# session holds no datetime, bytes or int keys (they would come back as strings).
JSON = os.environ.get("SESSION_SERIALIZATION_FORMAT") == "json"
# SESSION_USE_SIGNER=true: the cookie is "sid.signature" (itsdangerous, salt flask-session).
SIGNER = os.environ.get("SESSION_USE_SIGNER") == "true"
# Values only pickle keeps (msgspec turns them into lists or strings).
PICKLE_VALUES = {
    "small": -(2**63),
    "pair": (1, "x"),
    "tags": {1, 2, 3},
    "frozen": frozenset({4}),
    "day": datetime.date(2024, 1, 2),
    "naive": datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
    "span": datetime.timedelta(days=1, seconds=2, microseconds=3),
    "offset": datetime.datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2), "CEST")
    ),
    "huge": 2**100,
    "keyed": {(1, 2): "tuple key", 3: "int key"},
}


def file_cache(threshold=None):
    """The FileSystemCache of SESSION_FILE_DIR (threshold 0: opening it does not recount)."""
    from cachelib.file import FileSystemCache

    return FileSystemCache(
        os.environ["SESSION_FILE_DIR"],
        threshold=int(os.environ.get("SESSION_FILE_THRESHOLD", "500")) if threshold is None else threshold,
        mode=int(os.environ.get("SESSION_FILE_MODE", "384")),
        hash_method=getattr(hashlib, os.environ.get("SESSION_FILE_HASH", "sha256")),
    )


def make_app():
    app = Flask(__name__)
    kind = os.environ["SESSION_TYPE"]
    app.config.update(
        SESSION_TYPE=kind,
        SECRET_KEY=os.environ.get("SECRET_KEY", "interop-secret"),
        SECRET_KEY_FALLBACKS=[
            key.strip() for key in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if key.strip()
        ],
        SESSION_KEY_PREFIX=PREFIX,
        PERMANENT_SESSION_LIFETIME=LIFETIME,
        SESSION_PERMANENT=os.environ.get("SESSION_PERMANENT", "true") == "true",
        SESSION_SERIALIZATION_FORMAT=os.environ.get("SESSION_SERIALIZATION_FORMAT", "msgpack"),
        SESSION_USE_SIGNER=SIGNER,
    )
    if kind == "redis":
        import redis

        app.config["SESSION_REDIS"] = redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    elif kind == "memcached":
        from pymemcache.client.base import Client

        host, port = os.environ.get("MEMCACHED_SERVERS", "127.0.0.1:11211").split(",")[0].split(":")
        app.config["SESSION_MEMCACHED"] = Client((host, int(port)))
    elif kind == "sqlalchemy":
        from flask_sqlalchemy import SQLAlchemy

        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["SQL_URL"]
        app.config["SESSION_SQLALCHEMY_TABLE"] = os.environ.get("SESSION_SQLALCHEMY_TABLE", "sessions")
        app.config["SESSION_SQLALCHEMY"] = SQLAlchemy(app)
    elif kind == "mongodb":
        import pymongo

        app.config["SESSION_MONGODB"] = pymongo.MongoClient(
            os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/?directConnection=true")
        )
        app.config["SESSION_MONGODB_DB"] = os.environ.get("SESSION_MONGODB_DB", "flask_session")
        app.config["SESSION_MONGODB_COLLECT"] = os.environ.get("SESSION_MONGODB_COLLECT", "sessions")
    elif kind == "dynamodb":
        import boto3

        app.config["SESSION_DYNAMODB"] = boto3.resource(
            "dynamodb",
            endpoint_url=os.environ.get("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
        )
        app.config["SESSION_DYNAMODB_TABLE"] = os.environ.get("SESSION_DYNAMODB_TABLE", "Sessions")
    elif kind == "filesystem":
        app.config["SESSION_FILE_DIR"] = os.environ["SESSION_FILE_DIR"]
        app.config["SESSION_FILE_THRESHOLD"] = int(os.environ.get("SESSION_FILE_THRESHOLD", "500"))
        app.config["SESSION_FILE_MODE"] = int(os.environ.get("SESSION_FILE_MODE", "384"))
    elif kind == "cachelib":
        app.config["SESSION_CACHELIB"] = file_cache()
    Session(app)

    @app.post("/login")
    def login():
        session["user"] = request.args["user"]
        session["big"] = 2**64 - 1
        session["ratio"] = 0.5
        if JSON:
            session["nested"] = {"1": "one", "k": [1, 2.0, None]}
        else:
            session["when"] = WHEN
            session["blob"] = b"\x00\x01\xff"
            session["nested"] = {1: "one", "k": [1, 2.0, None]}
        if PICKLE:
            session.update(PICKLE_VALUES)
        flash("Welcome back")
        return "ok"

    @app.post("/login_markup")
    def login_markup():
        from markupsafe import Markup

        session["user"] = request.args["user"]
        flash(Markup("<b>Welcome</b>"))
        return "ok"

    @app.get("/")
    def show():
        data = dict(session)
        problems = []
        if "when" in data and data["when"] != WHEN:
            problems.append(f"when: {data['when']!r}")
        if "blob" in data and data["blob"] != b"\x00\x01\xff":
            problems.append(f"blob: {data['blob']!r}")
        if "big" in data and data["big"] != 2**64 - 1:
            problems.append(f"big: {data['big']!r}")
        if "ratio" in data and (type(data["ratio"]) is not float or data["ratio"] != 0.5):
            problems.append(f"ratio: {data['ratio']!r}")
        nested = {"1" if JSON else 1: "one", "k": [1, 2.0, None]}
        if "nested" in data and data["nested"] != nested:
            problems.append(f"nested: {data['nested']!r}")
        if PICKLE:
            for key, value in PICKLE_VALUES.items():
                if key in data and (type(data[key]) is not type(value) or data[key] != value):
                    problems.append(f"{key}: {data[key]!r}")
            if "offset" in data and data["offset"].tzinfo != PICKLE_VALUES["offset"].tzinfo:
                problems.append(f"offset zone: {data['offset'].tzinfo!r}")
            if "when" in data and data["when"].tzinfo is not datetime.timezone.utc:
                problems.append(f"when zone: {data['when'].tzinfo!r}")
        simple = {k: v for k, v in data.items() if isinstance(v, (str, int, float, bool)) and not isinstance(v, bool) or k == "_permanent"}
        return jsonify(
            session=simple,
            keys=sorted(str(k) for k in data),
            flashes=[list(f) for f in data.get("_flashes", [])],
            flash_types=[type(f).__name__ for f in data.get("_flashes", [])],
            problems=problems,
            permanent=session.permanent,
        )

    @app.post("/counter")
    def counter():
        session["counter"] = session.get("counter", 0) + 1
        return str(session["counter"])

    return app


def stored(sid):
    """(bytes, ttl seconds or None) as the backend holds them, without Flask-Session."""
    kind = os.environ["SESSION_TYPE"]
    # A signed cookie's value is "sid.signature"; the store's key has the sid alone.
    key = PREFIX + sid.split(".")[0]
    if kind == "redis":
        import redis

        r = redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
        return r.get(key), r.ttl(key)
    if kind == "memcached":
        from pymemcache.client.base import Client

        host, port = os.environ.get("MEMCACHED_SERVERS", "127.0.0.1:11211").split(",")[0].split(":")
        return Client((host, int(port))).get(key), None
    if kind == "sqlalchemy":
        import sqlalchemy

        engine = sqlalchemy.create_engine(os.environ["SQL_URL"])
        table = os.environ.get("SESSION_SQLALCHEMY_TABLE", "sessions")
        with engine.connect() as conn:
            row = conn.execute(
                sqlalchemy.text(f"SELECT data, expiry FROM {table} WHERE session_id = :k"), {"k": key}
            ).first()
        if row is None:
            return None, None
        expiry = row[1]
        if isinstance(expiry, str):
            expiry = datetime.datetime.fromisoformat(expiry)
        ttl = (expiry - datetime.datetime.utcnow()).total_seconds()
        return bytes(row[0]), ttl
    if kind == "mongodb":
        import pymongo

        client = pymongo.MongoClient(os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/?directConnection=true"))
        coll = client[os.environ.get("SESSION_MONGODB_DB", "flask_session")][os.environ.get("SESSION_MONGODB_COLLECT", "sessions")]
        doc = coll.find_one({"id": key})
        if doc is None:
            return None, None
        exp = doc["expiration"]
        if exp.tzinfo is None:
            exp = exp.replace(tzinfo=datetime.timezone.utc)
        return bytes(doc["val"]), (exp - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    if kind == "dynamodb":
        import boto3

        table = boto3.resource(
            "dynamodb",
            endpoint_url=os.environ.get("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
        ).Table(os.environ.get("SESSION_DYNAMODB_TABLE", "Sessions"))
        item = table.get_item(Key={"id": key}).get("Item")
        if item is None:
            return None, None
        import time

        return bytes(item["val"].value), float(item["expiration"]) - time.time()
    raise SystemExit(f"unknown SESSION_TYPE {kind}")


def pickled(sid):
    """What SESSION_FILE_DIR holds for SID, read as cachelib does but without Flask-Session."""
    cache = file_cache(threshold=0)
    path = cache._get_filename(PREFIX + sid)
    entries = list(cache._list_dir())
    # cachelib's leftover temporary files are regular files; the owner index's directory
    # (`owners-v1.__wz_cache`) shares their suffix so that cachelib skips it, and is not one.
    temp_files = [
        n
        for n in os.listdir(cache._path)
        if n.endswith(cache._fs_transaction_suffix)
        and os.path.isfile(os.path.join(cache._path, n))
    ]
    shape = {
        "format": "pickle",
        "count": cache.get(cache._fs_count_file),
        "entries": len(entries),
        "temp_files": len(temp_files),
    }
    if not os.path.exists(path):
        return dict(shape, found=False)
    with open(path, "rb") as f:
        content = f.read()
    expires = int.from_bytes(content[:4], sys.byteorder)
    payload = content[4:]
    value = pickle.loads(payload)
    return dict(
        shape,
        found=True,
        is_dict=isinstance(value, dict),
        protocol=payload[1] if payload[:1] == b"\x80" else None,
        ttl=expires - time.time() if expires else None,
        mode=stat.S_IMODE(os.stat(path).st_mode),
        keys=[str(k) for k in value] if isinstance(value, dict) else None,
    )


def upkeep(directory):
    """cachelib's own count, prune and clear on `directory`, with the warnings it logs."""
    import logging

    from cachelib.file import FileSystemCache

    warnings = []

    class Collect(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        threshold = int(os.environ.get("SESSION_FILE_THRESHOLD", "500"))
        cache = FileSystemCache(
            directory,
            threshold=threshold,
            mode=int(os.environ.get("SESSION_FILE_MODE", "384")),
            hash_method=getattr(hashlib, os.environ.get("SESSION_FILE_HASH", "sha256")),
        )
        count_on_open = cache._file_count
        for n in range(threshold + 2):
            cache.set(f"filler{n}", n, timeout=60)
        count_after_prune = cache._file_count
        cache.clear()
        count_file = cache._get_filename(cache._fs_count_file).split(os.sep)[-1]
        left = sorted(name for name in os.listdir(directory) if name != count_file)
    finally:
        logging.getLogger().removeHandler(handler)
    return {
        "count_on_open": count_on_open,
        "count_after_prune": count_after_prune,
        "warnings": warnings,
        "left": left,
    }


def prune_clear():
    import tempfile

    shared = upkeep(os.environ["SESSION_FILE_DIR"])
    with tempfile.TemporaryDirectory() as scratch:
        os.mkdir(os.path.join(scratch, "plain-folder"))
        control = upkeep(scratch)
    return {"shared": shared, "control": control}


def main():
    step = sys.argv[1]
    sid = sys.argv[2] if len(sys.argv) > 2 else None
    if step == "prune_clear" and PICKLE:
        print(json.dumps(prune_clear()))
        return
    if step == "raw" and PICKLE:
        print(json.dumps(pickled(sid)))
        return
    if step == "raw":
        value, ttl = stored(sid)
        if value is None:
            print(json.dumps({"found": False}))
            return
        if JSON:
            decoded = msgspec.json.decode(value)
            print(
                json.dumps(
                    {
                        "found": True,
                        "format": "json",
                        "is_json_object": isinstance(decoded, dict),
                        "same_as_msgspec": msgspec.json.encode(decoded) == value,
                        "ttl": ttl,
                        "keys": [str(k) for k in decoded],
                    }
                )
            )
            return
        decoded = msgspec.msgpack.decode(value)
        print(
            json.dumps(
                {
                    "found": True,
                    "format": "msgpack",
                    "is_msgpack_map": value[:1] >= b"\x80" and (value[:1] <= b"\x8f" or value[:1] in (b"\xde", b"\xdf")),
                    "same_as_msgspec": msgspec.msgpack.encode(decoded) == value,
                    "ttl": ttl,
                    "keys": [str(k) for k in decoded],
                }
            )
        )
        return
    app = make_app()
    client = app.test_client()
    if sid:
        client.set_cookie("session", sid)
    if step == "login":
        response = client.post("/login?user=ann")
    elif step == "login_markup":
        response = client.post("/login_markup?user=mark")
    elif step == "get":
        response = client.get("/")
    elif step == "counter":
        response = client.post("/counter")
    else:
        raise SystemExit(f"unknown step {step}")
    cookie = client.get_cookie("session")
    body = response.get_json(silent=True)
    print(
        json.dumps(
            {
                "status": response.status_code,
                "sid": cookie.value if cookie is not None else None,
                "body": body if body is not None else response.get_data(as_text=True),
            }
        )
    )


if __name__ == "__main__":
    main()
