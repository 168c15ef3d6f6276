"""The words of the trade: domains, procedures, categories and project statuses.

Pure values shared by the rulebook, the lifecycle and the models.
"""
from __future__ import annotations

from enum import StrEnum


class Domain(StrEnum):
    """Trading domain (交易领域)."""

    CONSTRUCTION = "construction"      # 工程建设项目招标投标
    GOVERNMENT_PROCUREMENT = "gp"      # 政府采购
    STATE_ASSETS = "assets"            # 国有产权/资产交易


class Procedure(StrEnum):
    """Procurement or transaction procedure (交易方式)."""

    OPEN_TENDER = "open_tender"                    # 公开招标
    INVITED_TENDER = "invited_tender"              # 邀请招标
    COMPETITIVE_NEGOTIATION = "negotiation"        # 竞争性谈判
    COMPETITIVE_CONSULTATION = "consultation"      # 竞争性磋商
    INQUIRY = "inquiry"                            # 询价
    SINGLE_SOURCE = "single_source"                # 单一来源
    LISTING_AGREEMENT = "listing"                  # 挂牌 / 协议转让
    SEALED_SINGLE_BID = "sealed_bid"               # 一次报价
    ONLINE_AUCTION = "auction"                     # 网络竞价 (多次报价)


class Category(StrEnum):
    """Subject matter (采购/招标标的类别)."""

    WORKS = "works"            # 工程
    GOODS = "goods"            # 货物
    SERVICES = "services"      # 服务
    PROPERTY_RIGHTS = "property_rights"  # 产权


PROCEDURES_BY_DOMAIN: dict[Domain, tuple[Procedure, ...]] = {
    Domain.CONSTRUCTION: (Procedure.OPEN_TENDER, Procedure.INVITED_TENDER),
    Domain.GOVERNMENT_PROCUREMENT: (
        Procedure.OPEN_TENDER, Procedure.INVITED_TENDER, Procedure.COMPETITIVE_NEGOTIATION,
        Procedure.COMPETITIVE_CONSULTATION, Procedure.INQUIRY, Procedure.SINGLE_SOURCE,
    ),
    Domain.STATE_ASSETS: (
        Procedure.LISTING_AGREEMENT, Procedure.SEALED_SINGLE_BID, Procedure.ONLINE_AUCTION,
    ),
}

CATEGORIES_BY_DOMAIN: dict[Domain, tuple[Category, ...]] = {
    Domain.CONSTRUCTION: (Category.WORKS, Category.GOODS, Category.SERVICES),
    Domain.GOVERNMENT_PROCUREMENT: (Category.WORKS, Category.GOODS, Category.SERVICES),
    Domain.STATE_ASSETS: (Category.PROPERTY_RIGHTS,),
}


class Status(StrEnum):
    """Where a trading project stands. Timed statuses are derived, never stored."""

    DRAFT = "draft"
    PUBLISHED = "published"      # notice out, documents not yet issued / bidding not open
    BIDDING = "bidding"          # documents issued, bids accepted until the deadline
    CLOSED = "closed"            # deadline passed, waiting for the opening
    OPENING = "opening"          # 开标 in progress
    EVALUATION = "evaluation"    # 评标
    PUBLICITY = "publicity"      # 中标候选人公示
    AWARDED = "awarded"          # 中标/成交通知书 issued
    CONTRACTED = "contracted"    # contract signed
    CANCELLED = "cancelled"
    FAILED = "failed"            # 流标 / 废标
    SUSPENDED = "suspended"      # by a supervisor (RULES H3)


class Role(StrEnum):
    """Platform roles of a user account."""

    ADMIN = "admin"
    AGENT = "agent"
    TENDEREE = "tenderee"
    BIDDER = "bidder"
    EXPERT = "expert"
    SUPERVISOR = "supervisor"
    CUSTODIAN = "custodian"


class OrgKind(StrEnum):
    """Kinds of organisation that take part."""

    TENDEREE = "tenderee"          # 招标人 / 采购人 / 转让方
    AGENT = "agent"                # 招标代理机构
    BIDDER = "bidder"              # 投标人 / 供应商 / 意向受让方
    SUPERVISORY_BODY = "supervisory_body"  # 监督部门
    EXCHANGE_CENTRE = "exchange_centre"    # 公共资源交易中心
