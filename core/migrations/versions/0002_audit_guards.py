"""Audit-log guards: refuse UPDATE and DELETE on log rows; seed the log head.

Revision ID: 0002_audit_guards
Revises: 0001_initial
"""
from alembic import op

revision = "0002_audit_guards"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

APPEND_ONLY = ("log_entries", "log_nodes", "log_details", "checkpoints")
PRIMARY_KEYS = {"log_entries": ("index",), "log_nodes": ("level", "index"),
                "log_details": ("index",), "checkpoints": ("size",)}


def upgrade() -> None:
    op.execute("INSERT INTO log_head (id, size) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION ebid_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
            END $$""")
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION ebid_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION ebid_append_only()")
        op.execute("""
            CREATE FUNCTION ebid_log_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.size <> OLD.size + 1 THEN
                    RAISE EXCEPTION 'audit log head grows by one entry at a time';
                END IF;
                RETURN NEW;
            END $$""")
        op.execute("CREATE TRIGGER log_head_forward BEFORE UPDATE ON log_head "
                   "FOR EACH ROW EXECUTE FUNCTION ebid_log_head_forward()")
        op.execute("CREATE TRIGGER log_head_no_delete BEFORE DELETE ON log_head "
                   "FOR EACH ROW EXECUTE FUNCTION ebid_append_only()")
    else:
        for table in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")
            # REPLACE / INSERT OR REPLACE delete the old row without firing DELETE triggers
            # (recursive triggers are off), so refuse any insert that would meet an old row.
            match = " AND ".join(f'"{col}" = NEW."{col}"' for col in PRIMARY_KEYS[table])
            op.execute(f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                       f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {match}) "
                       f"BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")
        op.execute("CREATE TRIGGER log_head_forward BEFORE UPDATE ON log_head "
                   "WHEN NEW.size <> OLD.size + 1 "
                   "BEGIN SELECT RAISE(ABORT, 'audit log head grows by one entry at a time'); END")
        op.execute("CREATE TRIGGER log_head_no_delete BEFORE DELETE ON log_head "
                   "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")


def downgrade() -> None:
    raise NotImplementedError("the audit log's guards are never removed")
