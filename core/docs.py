"""Browsable API docs (Swagger UI) served from the locally installed `swagger-ui-bundle`:
no CDN at runtime, and no inline script (the page works under a strict CSP)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, abort, send_from_directory

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>ebid API 文档 / API docs</title>
<link rel="stylesheet" href="/api/v1/docs/assets/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="/api/v1/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/v1/docs/init.js"></script>
</body></html>"""

INIT = """window.ui = SwaggerUIBundle({url: "/api/v1/openapi.json", dom_id: "#swagger-ui",
  deepLinking: true, presets: [SwaggerUIBundle.presets.apis]});"""

_ALLOWED = {"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"}


def _assets_dir() -> Path:
    import swagger_ui_bundle
    return Path(swagger_ui_bundle.swagger_ui_path)


def register(app: Flask) -> None:
    bp = Blueprint("docs", __name__, url_prefix="/api/v1/docs")

    @bp.get("/")
    def page() -> Response:
        return Response(PAGE, mimetype="text/html")

    @bp.get("/init.js")
    def init() -> Response:
        return Response(INIT, mimetype="application/javascript")

    @bp.get("/assets/<name>")
    def asset(name: str) -> Response:
        if name not in _ALLOWED:
            abort(404)
        return send_from_directory(_assets_dir(), name, max_age=86400)

    app.register_blueprint(bp)
