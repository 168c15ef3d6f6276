"""The pool's CSV and XLSX import and export: round trips, all-or-nothing refusals with
row numbers, who may do it, and that every import and export is logged."""
from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from tests.experts.conftest import HEADER, expert_row, pool_csv

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def rich_rows() -> list[dict[str, str]]:
    """Rows using every column and cell syntax, Chinese text included."""
    return [
        expert_row("E001", "A0101;B02", employer="湖南省建筑设计院", phone="+86 731-1234567",
                   employments="ORG9@2012-01-01/2019-12-31;ORG10@2020-01-01/",
                   roles="director:ORG11@2018-03-01/2021-06-30;controller:ORG12@2019-01-01/",
                   relatives="spouse:王五@ORG13,ORG14;brother:赵六@",
                   services="TENDEREE1@2025-01-10;TENDEREE2@2025-06-01",
                   unavailable_until="2026-12-31", supervisory_staff="true"),
        expert_row("E002", "C03", region="", username="", title="associate_senior", status="suspended"),
        expert_row("E003.a-b_c", "A01"),
    ]


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def read_xlsx(data: bytes) -> list[dict[str, str]]:
    from openpyxl import load_workbook
    sheet = load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
    rows = [[("" if v is None else str(v)) for v in r] for r in sheet.iter_rows(values_only=True)]
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def xlsx_bytes(rows: list[dict[str, str]]) -> bytes:
    from openpyxl import Workbook
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append([row[h] for h in HEADER])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def expert_count(app) -> int:
    from core.db import db
    from trading.experts_models import Expert
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(Expert)).scalar_one()


def test_csv_round_trip_multipart(bench, backend):
    rows = rich_rows()
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"),
                             data={"file": (io.BytesIO(pool_csv(rows)), "pool.csv", "text/csv")},
                             content_type="multipart/form-data")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["data"] | {"sha256": None, "log_index": None} == {
        "rows": 3, "created": 3, "updated": 0, "format": "csv", "sha256": None, "log_index": None}
    resp = bench.client.get("/api/v1/experts/export?format=csv", headers=bench.h("admin"))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    exported = resp.get_data()
    assert exported.startswith("\ufeff".encode())
    assert read_csv(exported) == sorted(rows, key=lambda r: r["id"])
    # Re-importing the export changes nothing and replaces every row.
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"), data=exported,
                             content_type="text/csv")
    assert resp.status_code == 201, resp.get_json()
    assert (resp.get_json()["data"]["created"], resp.get_json()["data"]["updated"]) == (0, 3)
    again = bench.client.get("/api/v1/experts/export?format=csv", headers=bench.h("admin")).get_data()
    assert again == exported
    assert [e["data"]["rows"] for e in bench.log_actions("experts.imported")] == [3, 3]
    assert len(bench.log_actions("experts.exported")) == 2


def test_xlsx_round_trip_raw_body(bench, backend):
    rows = rich_rows()
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"),
                             data=xlsx_bytes(rows), content_type=XLSX)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["data"]["format"] == "xlsx"
    resp = bench.client.get("/api/v1/experts/export?format=xlsx", headers=bench.h("supervisor"))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == XLSX
    assert 'filename="experts-' in resp.headers["Content-Disposition"]
    assert read_xlsx(resp.get_data()) == sorted(rows, key=lambda r: r["id"])
    # and the XLSX export reads back through the CSV export identically
    csv_rows = read_csv(bench.client.get("/api/v1/experts/export", headers=bench.h("admin")).get_data())
    assert csv_rows == sorted(rows, key=lambda r: r["id"])


def test_numbers_and_dates_typed_into_a_spreadsheet_are_read_as_text(bench, backend):
    from datetime import date

    from openpyxl import Workbook
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["id", "name", "specialties", "title", "field_since", "region"])
    sheet.append(["E100", "专家", "A0101", "senior", date(2011, 5, 6), 430426])
    buffer = io.BytesIO()
    workbook.save(buffer)
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"),
                             data={"file": (io.BytesIO(buffer.getvalue()), "pool.xlsx")},
                             content_type="multipart/form-data")
    assert resp.status_code == 201, resp.get_json()
    expert = bench.client.get("/api/v1/experts/E100", headers=bench.h("admin")).get_json()["data"]
    assert (expert["region"], expert["field_since"], expert["specialties"]) == ("430426", "2011-05-06", ["A0101"])


def test_a_bad_row_refuses_the_whole_file_naming_its_row(bench, backend):
    rows = [expert_row(f"E{i:03d}") for i in range(1, 6)]
    rows[2]["title"] = "professor"                          # row 4 (header is row 1)
    rows[4]["employments"] = "ORG1@2020-01-01/2019-01-01"   # row 6: ends before it starts
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"),
                             data=pool_csv(rows), content_type="text/csv")
    assert resp.status_code == 422, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "import_invalid"
    assert error["details"]["error_count"] == 2
    assert [(e["row"], e["column"]) for e in error["details"]["errors"]] == [(4, "title"), (6, "employments")]
    assert expert_count(bench.app) == 0                     # nothing stored
    refused = bench.log_actions("experts.import_refused")
    assert refused[-1]["data"]["errors"] == 2 and refused[-1]["data"]["code"] == "import_invalid"
    assert not bench.log_actions("experts.imported")


@pytest.mark.parametrize("mutate, row, column", [
    (lambda rows: rows[1].update(id="E001"), 3, "id"),                       # duplicate id
    (lambda rows: rows[0].update(id="-bad"), 2, "id"),
    (lambda rows: rows[1].update(specialties=""), 3, "specialties"),
    (lambda rows: rows[0].update(field_since="2030-01-01"), 2, "field_since"),  # future
    (lambda rows: rows[1].update(relatives="spouse"), 3, "relatives"),
    (lambda rows: rows[1].update(username="xe001"), 3, "username"),           # taken in file
])
def test_row_errors(bench, backend, mutate, row, column):
    rows = [expert_row("E001"), expert_row("E002")]
    mutate(rows)
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"),
                             data=pool_csv(rows), content_type="text/csv")
    assert resp.status_code == 422
    assert (resp.get_json()["error"]["details"]["errors"][0]["row"],
            resp.get_json()["error"]["details"]["errors"][0]["column"]) == (row, column)


def test_header_problems_and_formats(bench, backend):
    bad_header = b"id,name,specialties,title,shoe_size\r\nE1,x,A01,senior,42\r\n"
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"), data=bad_header,
                             content_type="text/csv")
    assert resp.status_code == 422
    messages = [e["message"] for e in resp.get_json()["error"]["details"]["errors"]]
    assert messages == ["unknown column 'shoe_size'", "missing column 'field_since'"]
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"), data=b"{}",
                             content_type="application/json")
    assert resp.status_code == 415
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"), data=b"garbage",
                             content_type=XLSX)
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "import_invalid"


def test_gb18030_csv_from_a_chinese_excel_is_read(bench, backend):
    data = pool_csv([expert_row("E001")]).decode("utf-8").encode("gb18030")
    resp = bench.client.post("/api/v1/experts/import", headers=bench.h("admin"), data=data,
                             content_type="text/csv")
    assert resp.status_code == 201, resp.get_json()
    expert = bench.client.get("/api/v1/experts/E001", headers=bench.h("admin")).get_json()["data"]
    assert expert["name"] == "专家E001"


def test_only_pool_keepers_import_and_export(bench, backend):
    data = pool_csv([expert_row("E001")])
    for name in ("agent", "bidder", "expert", "supervisor"):
        resp = bench.client.post("/api/v1/experts/import", headers=bench.h(name), data=data,
                                 content_type="text/csv")
        assert resp.status_code == 403, name
        assert resp.get_json()["error"]["code"] == "pool_keepers_only"
    for name in ("agent", "bidder", "tenderee"):
        resp = bench.client.get("/api/v1/experts/export", headers=bench.h(name))
        assert resp.status_code == 403, name
    assert len(bench.log_actions("experts.export_refused")) == 3
    assert expert_count(bench.app) == 0


def test_list_by_specialty_prefix(bench, backend):
    bench.import_pool([expert_row("E001", "A0101"), expert_row("E002", "A0201"),
                       expert_row("E003", "B01", region="110000")])
    resp = bench.client.get("/api/v1/experts?specialty=A01", headers=bench.h("admin"))
    assert [e["id"] for e in resp.get_json()["data"]] == ["E001"]
    resp = bench.client.get("/api/v1/experts?region=110000", headers=bench.h("supervisor"))
    assert [e["id"] for e in resp.get_json()["data"]] == ["E003"]
    assert bench.client.get("/api/v1/experts", headers=bench.h("bidder")).status_code == 403


def test_credit_record_suspends_from_draws(bench, backend):
    bench.import_pool([expert_row("E001")])
    resp = bench.client.post("/api/v1/experts/E001/credits", headers=bench.h("supervisor"),
                             json={"kind": "violation", "points": -10, "note": "迟到",
                                   "suspended_until": "2026-12-31"})
    assert resp.status_code == 201, resp.get_json()
    from core.db import db
    from trading import experts
    with bench.app.app_context():
        [entry] = experts.load_entries(db.session, ["E001"], bench.clock.now().date())
    assert entry.available is False
    assert bench.log_actions("expert.credit_recorded")[0]["data"]["points"] == "-10"
