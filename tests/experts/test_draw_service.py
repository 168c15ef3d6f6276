"""The draw service over HTTP (PROTOCOL §8; RULES D1-D6): commitments, shortages, void
draws, secrecy of names, recusal, replacements, determinism and the audit trail."""
from __future__ import annotations

import json

import sqlalchemy as sa

from tests.experts.conftest import LOT, expert_row, standard_pool

ALL_IDS = [r["id"] for r in standard_pool()]


def records(bench, tender):
    from core.db import db
    from trading.experts_models import DrawRecord
    with bench.app.app_context():
        return db.session.execute(sa.select(DrawRecord).where(DrawRecord.project_id == tender)
                                  .order_by(DrawRecord.attempt)).scalars().all()


def test_a_valid_draw_seats_the_committee_and_logs_no_names(bench, backend):
    tender = bench.prepared()
    draw = bench.drawn(tender, alternates=1)
    assert draw["status"] == "valid" and draw["public"] is True  # supervisor's view
    groups = draw["result"]["groups"]
    assert [len(g) for g in groups] == [3, 2] and len(draw["result"]["alternates"]) == 1
    assert all(e.startswith("E") for e in groups[0]) and all(e.startswith("F") for e in groups[1])
    # Leaves of the draw name nobody: hashes and counts only (RULES D4).
    for action in ("draw.requested", "draw.revealed", "draw.completed", "draw.committed"):
        for entry in bench.log_actions(action):
            assert not any(expert in json.dumps(entry) for expert in ALL_IDS), action
    completed = bench.log_actions("draw.completed")[0]
    assert completed["data"]["eligible_lists_sha256"] == draw["eligible_lists_sha256"]
    assert completed["detail_sha256"] is not None
    # Everyone else sees status and hashes, not the lists, secrets or result.
    public = bench.client.get(f"/api/v1/tenders/{tender}/draws/1").get_json()["data"]
    assert public["public"] is False and "result" not in public and "eligible_lists" not in public
    assert "secret" not in json.dumps(public["commitments"])


def test_same_inputs_give_the_same_committee(bench, backend):
    from core.db import db
    from trading import draw as pure
    from trading import expert_draw
    from trading.models import Project
    tender = bench.prepared()
    record = bench.drawn(tender)
    seed = pure.seed(bytes.fromhex(record["commitments"]["platform"]["secret"]),
                     bytes.fromhex(record["commitments"]["supervisor"]["secret"]),
                     bytes.fromhex(record["closing"]["root"]), record["request"])
    assert seed.hex() == record["seed"]
    for _ in range(2):
        assert pure.draw_committee(seed, record["request"], record["eligible_lists"]).to_json() == record["result"]
    # The eligible lists are a function of the pool, the parties and the day.
    with bench.app.app_context():
        project = db.session.get(Project, tender)
        closing = expert_draw.find_closing(db.session, tender)
        again = expert_draw.eligible_lists(db.session, project, closing, record["request"], bench.clock.now())
    assert again == record["eligible_lists"]


def test_not_enough_experts_names_the_short_group_and_stores_nothing(bench, backend):
    tender = bench.prepared(pool=standard_pool(civil=8, economists=1))
    resp = bench.request(tender, groups=[{"specialty": "A01", "count": 3}, {"specialty": "B01", "count": 2}])
    assert resp.status_code == 409, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "not_enough_experts"
    assert error["details"] | {"eligible": None} == {"group": 1, "specialty": "B01", "alternates": False,
                                                     "needed": 2, "available": 1, "eligible": None}
    assert records(bench, tender) == []
    refused = bench.log_actions("draw.refused")[-1]["data"]
    assert refused["code"] == "not_enough_experts" and refused["details"]["specialty"] == "B01"
    # Alternates that cannot be filled are short too.
    resp = bench.request(tender, groups=[{"specialty": "A01", "count": 5}], alternates=4)
    assert resp.get_json()["error"]["details"] | {"eligible": None} == {
        "group": 1, "specialty": None, "alternates": True, "needed": 4, "available": 3, "eligible": None}


def test_a_secret_that_does_not_match_voids_the_draw(bench, backend):
    tender = bench.prepared()
    assert bench.request(tender).status_code == 201
    resp = bench.reveal(tender, secret=b"\x01" * 32)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "secret_mismatch"
    [record] = records(bench, tender)
    assert record.status == "void" and record.outcome == {"reason": "secret_mismatch", "party": "supervisor"}
    assert bench.log_actions("draw.voided")[0]["data"]["reason"] == "secret_mismatch"
    assert bench.log_actions("draw.revealed")[-1]["data"] | {"party": None} == {
        "tender": str(tender), "lot": LOT, "attempt": 1, "matches": False, "party": None}
    # The void draw cannot be revealed again; a new draw (attempt 2) needs new commitments.
    assert bench.reveal(tender).get_json()["error"]["code"] == "draw_not_pending"
    assert bench.request(tender).get_json()["error"]["code"] == "supervisor_commitment_missing"
    assert bench.commit_supervisor(tender, attempt=2).status_code == 201
    resp = bench.request(tender)
    assert resp.status_code == 201 and resp.get_json()["data"]["kind"] == "redraw"
    assert bench.reveal(tender, attempt=2).status_code == 200


def test_a_refusal_to_reveal_is_logged_and_voids(bench, backend):
    tender = bench.prepared()
    assert bench.request(tender).status_code == 201
    resp = bench.client.post(f"/api/v1/tenders/{tender}/draws/1/refusal", headers=bench.h("agent"),
                             json={"lot": LOT, "reason": "监督部门未到场揭示"})
    assert resp.status_code == 200 and resp.get_json()["data"]["status"] == "void"
    assert bench.log_actions("draw.reveal_refused")[0]["data"]["reason"] == "监督部门未到场揭示"


def test_commitments_come_before_closing(bench, backend):
    bench.import_pool(standard_pool())
    tender = bench.tender()
    assert bench.commit_supervisor(tender).status_code == 201   # the platform commits alongside
    assert bench.commit_supervisor(tender).get_json()["error"]["code"] == "already_committed"
    commitments = bench.client.get(f"/api/v1/tenders/{tender}/draws/commitments").get_json()["data"]
    assert sorted(c["party"] for c in commitments) == ["platform", "supervisor"]
    other = bench.tender()
    bench.close(other)
    assert bench.commit_supervisor(other).get_json()["error"]["code"] == "commitment_too_late"
    assert bench.commit_platform(other).get_json()["error"]["code"] == "commitment_too_late"
    # The platform committed at publication, so only the supervisor's commitment is missing.
    resp = bench.request(other)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "supervisor_commitment_missing"
    assert bench.log_actions("draw.refused")[-1]["data"]["code"] == "supervisor_commitment_missing"


def test_committee_size_is_checked_against_d1(bench, backend):
    tender = bench.prepared()
    resp = bench.request(tender, groups=[{"specialty": "A01", "count": 4}])
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert (error["code"], error["details"]["rule"]) == ("rule_violation", "D1")
    # 3 experts + 2 tenderee representatives: 5 members, odd, but experts 3/5 < 2/3.
    resp = bench.request(tender, groups=[{"specialty": "A01", "count": 3}], tenderee_representatives=2)
    assert resp.get_json()["error"]["details"]["rule"] == "D1"
    # 4 experts + 1 representative is fine.
    resp = bench.request(tender, groups=[{"specialty": "A01", "count": 4}], tenderee_representatives=1)
    assert resp.status_code == 201, resp.get_json()


def test_only_the_agent_requests_and_only_after_closing(bench, backend):
    bench.import_pool(standard_pool())
    tender = bench.tender()
    assert bench.commit_platform(tender).status_code == 201
    resp = bench.request(tender)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "wrong_state"
    assert resp.get_json()["error"]["details"]["project_status"] == "bidding"
    bench.close(tender)
    resp = bench.client.post(f"/api/v1/tenders/{tender}/draws", headers=bench.h("tenderee"),
                             json={"lot": LOT, "groups": [{"specialty": "A01", "count": 5}]})
    assert resp.status_code == 403


def test_names_are_secret_from_tenderee_and_bidders_until_the_result(bench, backend):
    from core.db import db
    from trading import expert_draw
    from trading.models import Project
    tender = bench.prepared()
    draw = bench.drawn(tender)
    url = f"/api/v1/tenders/{tender}/committee?lot={LOT}"
    for name in ("tenderee", "bidder"):
        resp = bench.client.get(url, headers=bench.h(name))
        assert resp.status_code == 403, name
        assert resp.get_json()["error"]["code"] == "committee_secret"
    refusals = bench.log_actions("committee.access_refused")
    assert [r["actor"] for r in refusals] == ["tenderee1", "bidder1"]
    # The public is refused too, without a log entry naming nobody.
    assert bench.client.get(url).get_json()["error"]["code"] == "committee_secret"
    assert len(bench.log_actions("committee.access_refused")) == 2
    # The agent sees seats without names; the supervisor sees everything.
    seats = bench.client.get(url, headers=bench.h("agent")).get_json()["data"]["members"]
    assert len(seats) == 5 and all("expert" not in s for s in seats)
    members = bench.client.get(url, headers=bench.h("supervisor")).get_json()["data"]["members"]
    assert sorted(m["expert"] for m in members) == sorted(e for g in draw["result"]["groups"] for e in g)
    # After the result everyone sees the names and the draw's inputs.
    with bench.app.app_context():
        expert_draw.publish_committee(db.session, db.session.get(Project, tender), bench.clock.now())
        db.session.commit()
    resp = bench.client.get(url, headers=bench.h("bidder"))
    assert resp.status_code == 200 and resp.get_json()["data"]["public"] is True
    assert {m["name"] for m in resp.get_json()["data"]["members"]} >= {"专家" + draw["result"]["groups"][0][0]}
    public = bench.client.get(f"/api/v1/tenders/{tender}/draws/1").get_json()["data"]
    assert public["result"] == draw["result"] and public["eligible_lists"] == draw["eligible_lists"]
    published = bench.log_actions("committee.published")[0]["data"]
    assert published["draws"][0]["seed"] == draw["seed"]


def test_recusal_excludes_recent_employment_at_a_bidder(bench, backend):
    pool = standard_pool()
    pool[0]["employments"] = "BIDDER1@2015-01-01/2024-06-30"    # left < 3 years before the draw
    pool[1]["employments"] = "BIDDER2@2010-01-01/2022-12-31"    # left > 3 years before
    pool[2]["relatives"] = "spouse:张一@"                         # BIDDER1's legal representative
    pool[3]["employments"] = "TENDEREE1@2020-01-01/"             # works for the tenderee
    pool[4]["title"] = "intermediate"                            # D6: title too low
    pool[5]["field_since"] = "2020-01-01"                        # D6: too few years
    tender = bench.prepared(pool=pool)
    draw = bench.drawn(tender, groups=[{"specialty": "A01", "count": 1}, {"specialty": "B01", "count": 4}])
    eligible = draw["eligible_lists"][0]
    assert "E002" in eligible
    for excluded in ("E001", "E003", "E004", "E005", "E006"):
        assert excluded not in eligible, excluded


def test_a_decline_triggers_a_replacement_excluding_seated_and_replaced(bench, backend):
    tender = bench.prepared()
    draw = bench.drawn(tender)
    seated = [e for g in draw["result"]["groups"] for e in g]
    leaving = draw["result"]["groups"][0][1]
    who = bench.expert_user(leaving)
    resp = bench.client.post(f"/api/v1/tenders/{tender}/committee/decline", headers=bench.h(who),
                             json={"lot": LOT, "reason": "出差"})
    assert resp.status_code == 200 and resp.get_json()["data"]["status"] == "declined"
    assert bench.log_actions("committee.declined")[0]["actor"] == "hidden"
    # The replacement needs the supervisor's commitment for attempt 2 first.
    resp = bench.client.post(f"/api/v1/tenders/{tender}/draws/replacements", headers=bench.h("agent"),
                             json={"lot": LOT})
    assert resp.get_json()["error"]["code"] == "supervisor_commitment_missing"
    assert bench.commit_supervisor(tender, attempt=2).status_code == 201
    resp = bench.client.post(f"/api/v1/tenders/{tender}/draws/replacements", headers=bench.h("agent"),
                             json={"lot": LOT})
    assert resp.status_code == 201, resp.get_json()
    assert (resp.get_json()["data"]["attempt"], resp.get_json()["data"]["kind"]) == (2, "replacement")
    assert bench.reveal(tender, attempt=2).status_code == 200
    second = bench.full_draw(tender, 2)
    assert second["request"]["attempt"] == 2
    assert second["request"]["exclude"] == sorted(seated)           # the seated and the replaced
    assert second["request"]["groups"] == [{"specialty": "A01", "count": 1, "regions": []}]
    newcomer = second["result"]["groups"][0][0]
    assert newcomer not in seated
    members = bench.client.get(f"/api/v1/tenders/{tender}/committee?lot={LOT}",
                               headers=bench.h("supervisor")).get_json()["data"]["members"]
    by_id = {m["expert"]: m for m in members}
    assert by_id[leaving]["status"] == "declined" and by_id[leaving]["replaced_in_attempt"] == 2
    assert by_id[newcomer]["status"] == "invited" and by_id[newcomer]["seat_group"] == 0
    assert bench.client.post(f"/api/v1/tenders/{tender}/draws/replacements", headers=bench.h("agent"),
                             json={"lot": LOT}).get_json()["error"]["code"] == "no_vacancy"


def test_confirmation_declaration_and_active_members(bench, backend):
    from core.db import db
    from trading import expert_draw
    tender = bench.prepared()
    draw = bench.drawn(tender)
    first, second = draw["result"]["groups"][0][:2]
    base = f"/api/v1/tenders/{tender}/committee"
    a, b = bench.expert_user(first), bench.expert_user(second)
    # Bidders are shown only after accepting.
    resp = bench.client.get(f"{base}/bidders?lot={LOT}", headers=bench.h(a))
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "confirm_first"
    assert bench.client.post(f"{base}/confirm", headers=bench.h(a), json={"lot": LOT}).status_code == 200
    resp = bench.client.get(f"{base}/bidders?lot={LOT}", headers=bench.h(a))
    assert [x["code"] for x in resp.get_json()["data"]] == ["BIDDER1", "BIDDER2"]
    assert bench.client.post(f"{base}/declaration", headers=bench.h(a),
                             json={"lot": LOT, "conflict": False}).status_code == 200
    # The other declares a conflict: recused, and its seat awaits a replacement.
    assert bench.client.post(f"{base}/confirm", headers=bench.h(b), json={"lot": LOT}).status_code == 200
    resp = bench.client.post(f"{base}/declaration", headers=bench.h(b),
                             json={"lot": LOT, "conflict": True, "note": "曾为BIDDER2提供咨询"})
    assert resp.get_json()["data"]["status"] == "recused"
    # An expert sees its own seat only; a stranger has none.
    mine = bench.client.get(f"{base}?lot={LOT}", headers=bench.h(a)).get_json()["data"]["members"]
    assert [m["expert"] for m in mine] == [first]
    resp = bench.client.post(f"{base}/confirm", headers=bench.h("expert"), json={"lot": LOT})
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "not_an_expert"
    with bench.app.app_context():
        assert [m.expert_id for m in expert_draw.active_members(db.session, tender)] == [first]
    seats = bench.client.get("/api/v1/experts/me/committees", headers=bench.h(a)).get_json()["data"]
    assert seats[0]["tender"] == tender and seats[0]["declared_conflict"] is False


def test_naming_an_expert_directly_is_recorded_and_flagged(bench, backend):
    pool = standard_pool() + [expert_row("G001", "Z01"),
                              expert_row("G002", "Z01", employments="BIDDER1@2020-01-01/")]
    tender = bench.prepared(pool=pool)
    body = {"lot": LOT, "expert": "G001", "basis": "国务院特殊项目目录第3项",
            "reason": "技术复杂，库内无此专业"}
    resp = bench.client.post(f"/api/v1/tenders/{tender}/committee/named", headers=bench.h("agent"), json=body)
    assert resp.status_code == 200, resp.get_json()
    [entry] = bench.log_actions("committee.named_directly")
    assert entry["data"]["basis"] == body["basis"] and "G001" not in json.dumps(entry)
    resp = bench.client.post(f"/api/v1/tenders/{tender}/committee/named", headers=bench.h("agent"),
                             json={**body, "expert": "G002"})
    assert resp.status_code == 409
    assert resp.get_json()["error"]["details"]["reasons"] == ["employed_by_bidder"]


def test_several_lots_need_the_lot_named(bench, backend):
    bench.import_pool(standard_pool())
    tender = bench.tender(lots=("L1", "L2"))
    resp = bench.commit_platform(tender)
    assert sorted(c["lot"] for c in resp.get_json()["data"]) == ["L1", "L2"]
    resp = bench.client.post(f"/api/v1/tenders/{tender}/draws/commitments", headers=bench.h("supervisor"),
                             json={"commitment": "ab" * 32})
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "lot_required"


def test_a_suspension_freezes_the_draw(bench, backend):
    tender = bench.prepared()
    assert bench.request(tender).status_code == 201
    resp = bench.client.post(f"/api/v1/projects/{tender}/suspend", headers=bench.h("supervisor"),
                             json={"reason": "投诉处理中"})
    assert resp.status_code == 200, resp.get_json()
    resp = bench.reveal(tender)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "wrong_state"
    assert records(bench, tender)[0].status == "pending"
    resp = bench.client.post(f"/api/v1/projects/{tender}/resume", headers=bench.h("supervisor"),
                             json={"reason": "投诉已处理"})
    assert resp.status_code == 200, resp.get_json()
    assert bench.reveal(tender).status_code == 200
