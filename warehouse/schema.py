"""Named, ordered schema migrations, recorded in the table ``schema_migrations``.

A migration is applied once, inside a transaction with its record, so a crash never leaves
a half-applied schema. New schema changes are appended to MIGRATIONS; never edit one that
has shipped.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse.errors import WarehouseError

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "create_catalog_users_interactions",
        """
        CREATE TABLE items (
            item_id BIGINT PRIMARY KEY,
            title VARCHAR NOT NULL,
            year INTEGER,
            genres VARCHAR[] NOT NULL,
            extra JSON                  -- any further content columns of a generic catalog
        );
        CREATE TABLE users (
            user_id BIGINT PRIMARY KEY,
            age INTEGER,                -- years, or a MovieLens 1M band code when age_is_band
            age_is_band BOOLEAN NOT NULL DEFAULT FALSE,
            gender VARCHAR CHECK (gender IN ('M', 'F')),
            occupation VARCHAR,
            zip VARCHAR
        );
        CREATE TABLE interactions (
            user_id BIGINT NOT NULL,
            item_id BIGINT NOT NULL,
            rating REAL NOT NULL,
            timestamp BIGINT NOT NULL   -- unix seconds
        );
        CREATE TABLE dataset_loads (
            snapshot_id VARCHAR PRIMARY KEY,  -- content hash of the loaded data
            source VARCHAR NOT NULL,
            format VARCHAR NOT NULL,
            n_users BIGINT NOT NULL,
            n_items BIGINT NOT NULL,
            n_interactions BIGINT NOT NULL,
            loaded_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        "create_model_versions",
        """
        CREATE TABLE model_versions (
            version INTEGER PRIMARY KEY,
            mlflow_run_id VARCHAR NOT NULL,
            metrics JSON NOT NULL,
            data_snapshot VARCHAR NOT NULL,
            bundle_path VARCHAR,
            status VARCHAR NOT NULL CHECK (status IN ('candidate', 'champion', 'retired')),
            created_at TIMESTAMP NOT NULL,
            note VARCHAR
        );
        """,
    ),
    (
        "create_batch_results",
        """
        CREATE TABLE batch_runs (
            campaign VARCHAR PRIMARY KEY,
            model_version INTEGER NOT NULL,
            k INTEGER NOT NULL,
            n_known BIGINT NOT NULL,
            n_cold BIGINT NOT NULL,
            n_rejected BIGINT NOT NULL,
            output_path VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE batch_results (
            campaign VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL,
            rank INTEGER NOT NULL,
            item_id BIGINT NOT NULL,
            score REAL NOT NULL,
            model_version INTEGER NOT NULL
        );
        """,
    ),
    (
        "create_events_and_erasures",
        """
        -- Events from the HTTP service, merged from its landing file (warehouse.landing).
        CREATE TABLE events (
            event_id BIGINT PRIMARY KEY,    -- the landing file's id
            user_id BIGINT,
            session_id VARCHAR,
            item_id BIGINT NOT NULL,
            type VARCHAR NOT NULL CHECK (type IN ('view', 'click', 'like', 'dislike', 'rating')),
            value REAL,
            timestamp BIGINT NOT NULL,
            received_at TIMESTAMP NOT NULL
        );
        -- One row per merge: landing events up to merged_up_to are in the warehouse.
        CREATE TABLE event_merges (
            merged_up_to BIGINT NOT NULL,
            n_events BIGINT NOT NULL,
            n_interactions BIGINT NOT NULL,
            merged_at TIMESTAMP NOT NULL
        );
        -- Audit of erasures (DELETE /v1/users/{id}, /v1/sessions/{id}): who, when, what went.
        CREATE TABLE erasures (
            subject VARCHAR NOT NULL CHECK (subject IN ('user', 'session')),
            subject_id VARCHAR NOT NULL,
            requested_at TIMESTAMP NOT NULL,
            applied_at TIMESTAMP NOT NULL,
            n_events BIGINT NOT NULL,
            n_interactions BIGINT NOT NULL,
            n_batch_results BIGINT NOT NULL
        );
        """,
    ),
    (
        "batch_runs_token_retention_selfies",
        """
        ALTER TABLE batch_runs ADD COLUMN run_token VARCHAR;        -- names the run's staged files
        ALTER TABLE batch_runs ADD COLUMN expires_at TIMESTAMP;     -- purged after this (retention)
        ALTER TABLE batch_runs ADD COLUMN n_selfie BIGINT DEFAULT 0;
        ALTER TABLE batch_runs ADD COLUMN selfie_lists_stored BOOLEAN DEFAULT FALSE;
        """,
    ),
    (
        "model_versions_config_and_per_user_evaluations",
        """
        -- Bundle paths become relative to the home (a moved or copied home keeps working);
        -- the old code always wrote HOME/bundles/vN.
        UPDATE model_versions
           SET bundle_path = 'bundles/' || regexp_extract(bundle_path, '/bundles/(v[0-9]+)$', 1)
         WHERE regexp_matches(bundle_path, '/bundles/v[0-9]+$');
        ALTER TABLE model_versions ADD COLUMN config JSON;      -- the TrainConfig, whole
        ALTER TABLE model_versions ADD COLUMN run_name VARCHAR; -- the MLflow run's name
        -- Per judged user and protocol: the NDCG@k a version scored on its evaluation split.
        -- Versions trained on the same data snapshot share the split, so two versions can be
        -- compared user by user (paired bootstrap) without re-scoring either.
        CREATE TABLE model_evaluations (
            version INTEGER NOT NULL,
            protocol VARCHAR NOT NULL,
            user_id BIGINT NOT NULL,
            ndcg DOUBLE NOT NULL,
            PRIMARY KEY (version, protocol, user_id)
        );
        -- batch_results.user_id is the audience's id (text: new visitors may have any id);
        -- this view adds it as a BIGINT (NULL when it is not an integer) to join users.user_id.
        CREATE VIEW batch_results_by_user AS
            SELECT b.*, TRY_CAST(b.user_id AS BIGINT) AS known_user_id FROM batch_results b;
        """,
    ),
    (
        "external_ids",
        """
        -- Any string id (a SKU, a UUID) a source gives users or items. The warehouse, the trainer
        -- and the bundles key everything by the BIGINT user_id / item_id; when a source's ids are
        -- not all integers, ingest gives each one a key (1, 2, ... in the ids' sorted order) and
        -- keeps the source's id here. NULL: the key is the source's own integer id.
        ALTER TABLE users ADD COLUMN external_id VARCHAR;
        ALTER TABLE items ADD COLUMN external_id VARCHAR;
        CREATE UNIQUE INDEX users_by_external_id ON users(external_id);
        CREATE UNIQUE INDEX items_by_external_id ON items(external_id);
        """,
    ),
    (
        "batch_results_by_user_external_ids",
        """
        -- batch_results keep the audience's id as given (a catalog's string id, or the integer)
        -- and the item's key. The view adds the item's source id (NULL: the key is the id), and
        -- finds the user's key through users.external_id when the catalog's user ids are strings.
        CREATE OR REPLACE VIEW batch_results_by_user AS
            SELECT b.*,
                   CASE WHEN EXISTS (SELECT 1 FROM users WHERE external_id IS NOT NULL)
                        THEN (SELECT u.user_id FROM users u WHERE u.external_id = b.user_id)
                        ELSE TRY_CAST(b.user_id AS BIGINT) END AS known_user_id,
                   i.external_id AS item_external_id
            FROM batch_results b LEFT JOIN items i ON i.item_id = b.item_id;
        """,
    ),
)


def _applied(conn: duckdb.DuckDBPyConnection) -> list[str]:
    exists = conn.sql(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchall()[0][0]
    if not exists:
        return []
    return [row[0] for row in conn.sql("SELECT name FROM schema_migrations ORDER BY version").fetchall()]


def migrate(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"""
    )
    applied = _applied(conn)
    _check_known(applied)
    done = []
    for version, (name, sql) in enumerate(MIGRATIONS, start=1):
        if version <= len(applied):
            continue
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)", [version, name]
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        done.append(name)
    return done


def check_schema(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A read-only connection cannot migrate: say so instead of failing on a missing table."""
    applied = _applied(conn)
    _check_known(applied)
    if len(applied) < len(MIGRATIONS):
        missing = [name for name, _ in MIGRATIONS[len(applied):]]
        raise WarehouseError(
            f"the warehouse {path} predates this version of the program (missing migrations: "
            f"{', '.join(missing)}); run any writing command, e.g. `python cli.py ingest ...`, to upgrade it"
        )


def _check_known(applied: list[str]) -> None:
    expected = [name for name, _ in MIGRATIONS]
    if applied != expected[: len(applied)] or len(applied) > len(expected):
        raise WarehouseError(
            f"the warehouse's recorded migrations {applied} do not match this program's {expected}; "
            "it was written by another version of the program"
        )
