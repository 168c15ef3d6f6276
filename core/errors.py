"""Domain errors with stable codes, and the one error shape the API speaks.

Pure: no Flask. The web layer maps these to ``{"error": {"code", "message", "details"}}``
with the HTTP status given here; messages come in Simplified Chinese and English.
"""
from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A refusal the user can act on. ``code`` is stable; messages are for people."""

    status = 400
    code = "bad_request"
    message_zh = "请求无效"
    message_en = "Bad request"

    def __init__(self, message_en: str | None = None, *, code: str | None = None,
                 message_zh: str | None = None, status: int | None = None,
                 **details: Any) -> None:
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if message_en is not None:
            self.message_en = message_en
            # Without a Chinese text, say the English one rather than a wrong generic one.
            self.message_zh = message_zh or message_en
        elif message_zh is not None:
            self.message_zh = message_zh
        self.details = {k: v for k, v in details.items() if v is not None}
        super().__init__(f"{self.code}: {self.message_en}")

    def message(self, lang: str) -> str:
        """The message in ``lang`` (``zh`` or ``en``)."""
        return self.message_en if lang == "en" else self.message_zh


class BadRequest(AppError):
    status, code, message_zh, message_en = 400, "bad_request", "请求格式错误", "Malformed request"


class Unauthorized(AppError):
    status, code, message_zh, message_en = 401, "unauthorized", "需要登录", "Authentication required"


class Forbidden(AppError):
    status, code, message_zh, message_en = 403, "forbidden", "无权执行此操作", "Not allowed"


class NotFound(AppError):
    status, code, message_zh, message_en = 404, "not_found", "对象不存在", "Not found"


class Conflict(AppError):
    status, code, message_zh, message_en = 409, "conflict", "状态冲突", "Conflict with the current state"


class PayloadTooLarge(AppError):
    status, code, message_zh, message_en = 413, "payload_too_large", "请求体过大", "Request body too large"


class ValidationFailed(AppError):
    status, code, message_zh, message_en = 422, "validation_failed", "数据校验失败", "Validation failed"


class RuleBroken(AppError):
    """A rule of the rulebook refuses the action; ``details.rule`` names it."""

    status, code, message_zh, message_en = 422, "rule_violation", "违反交易规则", "Refused by a trading rule"


class TooManyRequests(AppError):
    status, code, message_zh, message_en = 429, "too_many_requests", "请求过于频繁", "Too many requests"


class ServiceUnavailable(AppError):
    status, code, message_zh, message_en = 503, "unavailable", "服务暂不可用", "Service unavailable"
