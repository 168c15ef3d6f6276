"""HTTP plumbing shared by every blueprint: envelopes, the error shape, the request's
``now``, strict JSON bodies, language choice.

Views stay thin: parse, call one service, dump. Everything here is about HTTP only.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable

from flask import Flask, Response, current_app, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from core.errors import AppError, BadRequest, PayloadTooLarge, ValidationFailed

log = logging.getLogger("ebid.web")

_HTTP_CODES = {
    400: ("bad_request", "请求格式错误", "Malformed request"),
    401: ("unauthorized", "需要登录", "Authentication required"),
    403: ("forbidden", "无权执行此操作", "Not allowed"),
    404: ("not_found", "对象不存在", "Not found"),
    405: ("method_not_allowed", "不支持该请求方法", "Method not allowed"),
    409: ("conflict", "状态冲突", "Conflict with the current state"),
    411: ("length_required", "需要 Content-Length", "Content-Length required"),
    413: ("payload_too_large", "请求体过大", "Request body too large"),
    415: ("unsupported_media_type", "不支持的内容类型", "Unsupported content type"),
    422: ("validation_failed", "数据校验失败", "Validation failed"),
    429: ("too_many_requests", "请求过于频繁", "Too many requests"),
    503: ("unavailable", "服务暂不可用", "Service unavailable"),
}


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def strict_json_loads(data: str | bytes) -> Any:
    """Parse JSON refusing duplicate keys, NaN/Infinity; numbers with a fraction become Decimal
    (so a money field can tell a float from a decimal string and refuse it)."""
    def bad_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")
    return json.loads(data, object_pairs_hook=_reject_duplicates, parse_float=Decimal,
                      parse_constant=bad_constant)


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` path parts that fit a database integer; larger ones match no route."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2 ** 31 - 1)
        super().__init__(map, *args, **kwargs)


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON with strict parsing and decimal-string money on output."""

    ensure_ascii = False
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_json_loads(s)

    @staticmethod
    def default(o: Any) -> Any:  # type: ignore[override]
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, datetime):
            from core.clock import format_instant
            return format_instant(o)
        return DefaultJSONProvider.default(o)


class StrictParser(FlaskParser):
    """webargs parser that speaks the platform's error shape."""

    DEFAULT_VALIDATION_STATUS = 422

    def load_json(self, req: Any, schema: Any) -> Any:
        if req.method in ("POST", "PUT", "PATCH") and not req.is_json:
            raise AppError("Send the body as application/json", code="unsupported_media_type",
                           message_zh="请以 application/json 发送请求体", status=415)
        return super().load_json(req, schema)

    def _raw_load_json(self, req: Any) -> Any:
        data = req.get_data(cache=True)
        if not data:
            return {}
        try:
            return strict_json_loads(data)
        except RecursionError:
            raise BadRequest("Body is nested too deeply", code="json_too_deep",
                             message_zh="请求体嵌套层级过深") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"Body is not valid JSON: {exc}", code="malformed_json",
                             message_zh=f"请求体不是合法的 JSON：{exc}") from None

    def handle_error(self, error: ValidationError, req: Any, schema: Any, *, error_status_code: Any,
                     error_headers: Any) -> None:
        raise validation_error(error)


def validation_error(error: ValidationError) -> ValidationFailed:
    """Turn marshmallow's messages into the platform's 422 with ``details.field``."""
    messages = error.normalized_messages()
    if isinstance(messages, dict) and "json" in messages and len(messages) == 1:
        messages = messages["json"]
    field = _first_field(messages)
    return ValidationFailed(f"Invalid field {field!r}" if field else "Invalid input",
                            message_zh=f"字段 {field} 无效" if field else "输入无效",
                            field=field, errors=messages)


def _first_field(messages: Any, prefix: str = "") -> str | None:
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}{key}" if prefix == "" else f"{prefix}.{key}"
            deeper = _first_field(value, name) if isinstance(value, dict) else None
            return deeper or name
    return None


def language() -> str:
    """``en`` when the client prefers English, otherwise ``zh`` (Simplified Chinese)."""
    best = request.accept_languages.best_match(["zh", "zh-CN", "en"], default="zh")
    return "en" if best and best.startswith("en") else "zh"


def error_response(code: str, message: str, status: int, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    resp = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    resp.status_code = status
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def register_error_handlers(app: Flask) -> None:
    """Every error leaves as ``{"error": {"code", "message", "details"}}``."""

    @app.errorhandler(AppError)
    def _app_error(exc: AppError) -> Response:
        return error_response(exc.code, exc.message(language()), exc.status, exc.details)

    @app.errorhandler(ValidationError)
    def _ma_error(exc: ValidationError) -> Response:
        err = validation_error(exc)
        return error_response(err.code, err.message(language()), err.status, err.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code, zh, en = _HTTP_CODES.get(status, ("http_error", "请求失败", "Request failed"))
        if status == 422 and getattr(exc, "data", None):  # webargs fallback
            messages = exc.data.get("messages") if isinstance(exc.data, dict) else None
            err = validation_error(ValidationError(messages or {}))
            return error_response(err.code, err.message(language()), 422, err.details)
        headers = dict(exc.get_headers()) if status == 405 else {}
        headers.pop("Content-Type", None)
        return error_response(code, en if language() == "en" else zh, status, headers=headers)

    @app.errorhandler(TimeoutError)
    def _client_timeout(exc: TimeoutError) -> Response:
        # The socket's receive timeout (wsgi.py): the client stopped sending its request.
        return error_response("client_timeout", "The client stopped sending" if language() == "en"
                              else "客户端停止发送数据", 408)

    @app.errorhandler(OverflowError)
    def _overflow(exc: OverflowError) -> Response:
        # A number too large for the database (SQLite raises OverflowError on bind).
        return error_response("value_out_of_range",
                              "A number is out of range" if language() == "en" else "数值超出范围", 422)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        from sqlalchemy.exc import DataError
        if isinstance(exc, DataError):  # PostgreSQL: numeric value out of range, and the like
            return error_response("value_out_of_range",
                                  "A value is out of range" if language() == "en" else "数值超出范围", 422)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("internal_error",
                              "Internal error" if language() == "en" else "服务器内部错误", 500)


def request_now() -> datetime:
    """The one ``now`` of this request: read lazily from the app's clock, then fixed."""
    if "_ebid_now" not in g:
        g._ebid_now = current_app.extensions["ebid"].clock.now()
    return g._ebid_now


def request_now_at_lock() -> datetime:
    """Re-read the clock and make that the request's ``now`` from here on.

    For a service that must read ``now`` only once it holds a lock (PROTOCOL §5: the
    deadline check of an upload happens after the body has streamed in and the tender
    lock is held), so a long upload is judged by when it finished, not when it began.
    """
    g._ebid_now = current_app.extensions["ebid"].clock.now()
    return g._ebid_now


def envelope(data: Any, status: int = 200, **meta: Any) -> tuple[dict[str, Any], int]:
    body: dict[str, Any] = {"data": data}
    if meta:
        body["meta"] = meta
    return body, status


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Body exceeds {limit} bytes", message_zh=f"请求体超过 {limit} 字节",
                           limit=limit)


def client_address() -> str | None:
    return request.remote_addr


Handler = Callable[..., Any]
