"""Close one tender as at its deadline, in a child process the bench can stop at a budget.

``python -m bench.closing_probe DATABASE_URL INSTANCE_PATH PROJECT_ID`` runs the closing
service (``bidding.closing.ensure_closed`` with ``now`` one second after the deadline, as
the first request after the deadline would) and prints one JSON line: the seconds it took,
the files listed and the collusion indicators recorded. The bench kills it when its time
budget runs out (the transaction is then rolled back by the database).
"""
from __future__ import annotations

import json
import sys
import time
from datetime import timedelta


def main(argv: list[str]) -> int:
    url, instance, project_id = argv[0], argv[1], int(argv[2])
    import sqlalchemy as sa

    from bidding import closing
    from bidding.models import CollusionIndicator
    from core.db import db
    from core.runtime import runtime
    from trading.models import Project
    from wsgi import create_app

    app = create_app({"EBID_DATABASE_URL": url, "EBID_INSTANCE_PATH": instance})
    with app.app_context():
        rt = runtime()
        project = db.session.get(Project, project_id)
        assert project is not None and project.bid_deadline is not None
        after = project.bid_deadline + timedelta(seconds=1)
        db.session.rollback()
        signer = closing.LogSigner(origin=rt.log_origin, key=rt.keys.log_key)
        start = time.perf_counter()
        closed = closing.ensure_closed(db.session, project_id, after, signer, trigger="bench")
        db.session.commit()
        seconds = time.perf_counter() - start
        indicators = db.session.execute(sa.select(sa.func.count()).select_from(CollusionIndicator)
                                        .where(CollusionIndicator.project_id == project_id)).scalar_one()
        print(json.dumps({"seconds": seconds, "files": len(closed.files) if closed else None,
                          "indicators": indicators}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
