"""Complaints, questions and objections as tracked items with their statutory limits
(RULES E8, A4, E4): red when late, objections pause the process until answered."""
from __future__ import annotations

from core.clock import parse_instant
from tests.supervision.supervision_helpers import DAY, HOUR, T0, Desk


def file(desk: Desk, pid: int, kind: str, who: str = "bidder", **extra: object):
    return desk.post(f"/api/v1/projects/{pid}/complaints", who, {"kind": kind, "text": "理由……", **extra})


def limit(item: dict, step: str) -> dict:
    [found] = [x for x in item["limits"] if x["step"] == step]
    return found


def opened(desk: Desk) -> int:
    pid = desk.project(publicity_end=desk.deadline + 12 * DAY)
    desk.act(pid, "start_opening", desk.deadline + HOUR)
    desk.act(pid, "finish_opening", desk.deadline + 2 * HOUR)
    return pid


def test_rule_E8_complaint_not_accepted_in_time_is_red_and_decided_in_time_is_not(desk: Desk):
    pid = opened(desk)
    desk.at(desk.deadline + DAY)
    resp = file(desk, pid, "complaint", known_at="2026-04-01T10:00:00+08:00")
    assert resp.status_code == 201, resp.get_json()
    item = resp.get_json()["data"]
    assert (item["kind"], item["rule"], item["status"]) == ("complaint", "E8", "filed")
    acceptance = limit(item, "complaint_acceptance")
    assert acceptance["state"] == "pending" and acceptance["rule"] == "E8"
    due = parse_instant(acceptance["due_at"])  # 3 working days, counted on the calendar

    desk.at(due + HOUR)
    card = desk.card(pid, "E8", "complaint_acceptance", f"complaint:{item['id']}")
    assert card["severity"] == "red" and card["state"] == "overdue"
    # deciding before accepting is refused where the rules have an acceptance step
    resp = desk.post(f"/api/v1/complaints/{item['id']}/decide", "supervisor",
                     {"decision": "驳回", "outcome": "dismissed"})
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "not_accepted"

    resp = desk.post(f"/api/v1/complaints/{item['id']}/accept", "supervisor", {"note": "受理"})
    assert resp.status_code == 200, resp.get_json()
    item = resp.get_json()["data"]
    assert limit(item, "complaint_acceptance")["state"] == "late"  # accepted, but late: red stays
    decision = limit(item, "complaint_decision")
    assert decision["state"] == "pending" and parse_instant(decision["due_at"]) > due + 30 * DAY
    resp = desk.post(f"/api/v1/complaints/{item['id']}/decide", "supervisor",
                     {"decision": "投诉不成立", "outcome": "dismissed"})
    assert resp.status_code == 200 and resp.get_json()["data"]["status"] == "decided"
    desk.at(parse_instant(decision["due_at"]) + DAY)
    cards = [c for c in desk.cards(project=pid) if c["rule"] == "E8"]
    assert [(c["step"], c["state"]) for c in cards] == [("complaint_acceptance", "late")]


def test_rule_E8_complaint_filed_after_its_limit_is_refused_and_logged(desk: Desk):
    pid = opened(desk)
    desk.at(desk.deadline + 20 * DAY)
    resp = file(desk, pid, "complaint", known_at="2026-04-01T10:00:00+08:00")
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "rule_violation" and error["details"]["rule"] == "E8"
    [refusal] = desk.entries("complaint.refused")
    assert refusal["actor"] == "bidder1" and refusal["data"]["code"] == "rule_violation"


def test_rule_E8_gp_question_is_answered_by_the_agent_not_by_the_supervisor(desk: Desk):
    pid = desk.project("gp", "open_tender", "goods")
    desk.at(T0 + DAY)
    assert file(desk, pid, "document_objection").get_json()["error"]["code"] == "complaint_kind_not_applicable"
    item = file(desk, pid, "question").get_json()["data"]
    assert (item["rule"], limit(item, "question_reply")["state"]) == ("E8", "pending")
    assert item["paused_process_at"] is None  # a GP question does not pause the procurement
    resp = desk.post(f"/api/v1/complaints/{item['id']}/answer", "supervisor", {"answer": "答复"})
    assert resp.status_code == 403
    resp = desk.post(f"/api/v1/complaints/{item['id']}/answer", "agent", {"answer": "已澄清"})
    assert resp.status_code == 200, resp.get_json()
    assert limit(resp.get_json()["data"], "question_reply")["state"] == "done"
    desk.at(T0 + 40 * DAY)
    assert not [c for c in desk.cards(project=pid) if c["rule"] == "E8"]


def test_rule_A4_objection_pauses_the_tender_and_a_late_reply_is_red(desk: Desk):
    pid = desk.project()
    filed = desk.at(T0 + 2 * DAY)
    resp = file(desk, pid, "document_objection")
    assert resp.status_code == 201, resp.get_json()
    item = resp.get_json()["data"]
    assert item["rule"] == "A4" and parse_instant(item["paused_process_at"]) == filed
    view = desk.view(pid)
    assert view["project"]["status"] == "suspended"
    [suspension] = view["suspensions"]
    assert suspension["by_complaint"] == item["id"] and "A4" in suspension["reason"]
    # the pause is the system's act: the objector is not named before the deadline (A6)
    [pause] = desk.entries("project.suspend")
    assert pause["actor"] == "system"
    [filing] = desk.entries("complaint.filed")
    assert filing["actor"] == "hidden" and filing["data"] == {}

    due = parse_instant(limit(item, "objection_reply")["due_at"])
    desk.at(due + HOUR)
    card = desk.card(pid, "A4", "objection_reply")
    assert card["severity"] == "red" and card["subject"] == f"complaint:{item['id']}"
    resp = desk.post(f"/api/v1/complaints/{item['id']}/answer", "agent", {"answer": "不修改招标文件"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["resumed_at"] is not None
    view = desk.view(pid)
    assert view["project"]["status"] == "bidding" and not view["suspensions"][0]["active"]
    assert desk.card(pid, "A4", "objection_reply")["state"] == "late"


def test_rule_A4_objection_later_than_ten_days_before_the_deadline_is_refused(desk: Desk):
    pid = desk.project()
    desk.at(desk.deadline - 5 * DAY)
    resp = file(desk, pid, "document_objection")
    assert resp.status_code == 422 and resp.get_json()["error"]["details"]["rule"] == "A4"
    [refusal] = desk.entries("complaint.refused")
    assert refusal["actor"] == "hidden"  # before the deadline: who objected stays hidden (A6)
    assert desk.view(pid)["project"]["status"] == "bidding"


def test_rule_E4_candidate_objection_pauses_publicity_and_moves_its_end(desk: Desk):
    d = desk.deadline
    pid = desk.project(publicity_end=d + 8 * DAY)
    desk.act(pid, "start_opening", d + HOUR)
    desk.act(pid, "finish_opening", d + 2 * HOUR)
    desk.act(pid, "submit_report", d + 2 * DAY)
    desk.at(d + DAY * 2 + HOUR)
    assert file(desk, pid, "candidate_objection").get_json()["error"]["code"] == "not_in_publicity"
    desk.act(pid, "start_publicity", d + 3 * DAY)
    desk.at(d + 6 * DAY)
    item = file(desk, pid, "candidate_objection", lot="L1").get_json()["data"]
    assert item["rule"] == "E4" and item["paused_process_at"] is not None
    assert desk.view(pid)["project"]["status"] == "suspended"
    # answered after the scheduled end of publicity: the end moves by the days paused
    desk.at(d + 8 * DAY + 2 * HOUR)
    resp = desk.post(f"/api/v1/complaints/{item['id']}/answer", "tenderee", {"answer": "维持评标结果"})
    assert resp.status_code == 200, resp.get_json()
    project = desk.client.get(f"/api/v1/projects/{pid}").get_json()["data"]
    assert project["status"] == "publicity"
    assert parse_instant(project["schedule"]["publicity_end"]) == d + 11 * DAY
    [resume] = desk.entries("project.resume")
    assert resume["data"]["schedule_moved_days"] == 3 and resume["data"]["moved"] == ["publicity_end"]


def test_complaints_are_listed_to_those_who_may_see_them(desk: Desk):
    pid = opened(desk)
    desk.at(desk.deadline + DAY)
    mine = file(desk, pid, "complaint").get_json()["data"]
    for who, expected in (("supervisor", [mine["id"]]), ("agent", [mine["id"]]), ("tenderee", [mine["id"]]),
                          ("bidder", [mine["id"]]), ("bidder2", []), ("expert", [])):
        resp = desk.get("/api/v1/complaints", who, project=pid)
        assert resp.status_code == 200, (who, resp.get_json())
        assert [c["id"] for c in resp.get_json()["data"]] == expected, who
    assert desk.get(f"/api/v1/complaints/{mine['id']}", "bidder2").status_code == 404
    assert file(desk, pid, "complaint", who="agent").status_code == 403
    assert desk.post(f"/api/v1/complaints/{mine['id']}/accept", "bidder").status_code == 403
    assert [e["data"]["what"] for e in desk.entries("complaint.refused")] == ["file", "accept"]
