"""The baseline app: bare Flask endpoints on the same ORM, database and gunicorn settings.

``gunicorn 'bench.baseline_app:create_app()'`` with ``BENCH_DATABASE_URL`` (and, for the
raw upload, ``BENCH_RAW_DIR``). Each endpoint does the least its operation could do:

- ``POST /insert``: insert one row (the request body as text) through flask-sqlalchemy
  with the platform's own extension and engine settings (SQLite WAL with BEGIN IMMEDIATE,
  or the PostgreSQL pool), and commit: the floor under a bid submission.
- ``PUT /raw/<name>``: stream the body to a file on disk in 1 MiB chunks and fsync it, with
  no hashing, no parsing and no checks: the floor under a sealed-file upload.
- ``GET /json``: a fixed JSON document of project-like objects: the floor under the
  public project pages.

Its table lives in its own metadata, never in the platform's, so migrations don't see it.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db import UTCDateTime, db, engine_options

CHUNK = 1024 * 1024


class BenchBase(DeclarativeBase):
    metadata = sa.MetaData()


class BenchRow(BenchBase):
    """One inserted row per baseline request."""

    __tablename__ = "bench_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def create_table(url: str) -> None:
    """Create the baseline table before the server forks (never in a worker)."""
    engine = sa.create_engine(url, **engine_options(url))
    BenchBase.metadata.create_all(engine)
    engine.dispose()


def count_rows(url: str) -> int:
    engine = sa.create_engine(url, **engine_options(url))
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(BenchRow)).scalar_one()
    engine.dispose()
    return int(count)


def _projects_document(count: int = 20) -> dict[str, Any]:
    """A document shaped like a page of the project list (sizes roughly alike)."""
    return {"data": [{
        "id": i, "title": f"县人民医院门诊楼改扩建工程施工 第{i}标段", "description": "",
        "domain": "construction", "procedure": "open_tender", "category": "works", "region": "430426",
        "status": "bidding", "currency": "CNY", "budget": "12800000.00", "max_price": "12000000.00",
        "tenderee": "TENDEREE1", "agent": "AGENT1",
        "schedule": {"documents_from": "2026-03-02T01:00:00.000Z", "bid_deadline": "2026-03-24T01:30:00.000Z"},
        "lots": [{"code": "1", "title": "施工", "budget": "12800000.00"}],
        "published_at": "2026-03-02T01:00:00.000Z", "next_check": "2026-03-24T01:30:00.000Z",
    } for i in range(1, count + 1)], "meta": {"page": 1, "per_page": count, "total": 200}}


def create_app() -> Flask:
    app = Flask(__name__)
    url = os.environ.get("BENCH_DATABASE_URL", "sqlite://")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, SQLALCHEMY_ENGINE_OPTIONS=engine_options(url))
    db.init_app(app)
    raw_dir = Path(os.environ.get("BENCH_RAW_DIR", "/tmp"))
    document = _projects_document()

    @app.get("/ping")
    def ping() -> Any:
        return jsonify({"ok": True})

    @app.post("/insert")
    def insert() -> Any:
        row = BenchRow(payload=request.get_data(as_text=True), created_at=datetime.now(timezone.utc))
        db.session.add(row)
        db.session.commit()
        return jsonify({"data": {"id": row.id}}), 201

    @app.put("/raw/<name>")
    def raw(name: str) -> Any:
        if not name.isalnum():
            return jsonify({"error": "bad name"}), 400
        size = 0
        path = raw_dir / f"{name}.raw"
        with open(path, "wb") as out:
            while chunk := request.stream.read(CHUNK):
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        return jsonify({"data": {"size": size}}), 201

    @app.get("/json")
    def json_document() -> Any:
        return jsonify(document)

    return app
