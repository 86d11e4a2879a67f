//! The PostgreSQL schema, created and migrated by ordo itself.
//!
//! Everything lives in the schema `ordo`. `ordo.schema_version` holds the version the
//! tables are at; [`migrate`] applies the missing [`MIGRATIONS`] in order, each in its
//! own transaction, under an advisory lock so that workers starting together migrate
//! once. A database at a newer version than this build knows is refused
//! ([`Error::UnsupportedVersion`]), never downgraded.
//!
//! Ids and keys are `text COLLATE "C"`, so `ORDER BY` gives byte order, as on sled.
//! Unsigned 64-bit values (milliseconds, seqs, fingerprints) are stored bit for bit in
//! `int8`.

use tokio_postgres::Client;

use super::session::db_error;
use crate::Error;

/// The schema version this build writes.
pub(crate) const VERSION: i32 = 3;

/// The advisory lock key migrations hold (any constant; "ordo" in ASCII).
const MIGRATION_LOCK: i64 = 0x6f72_646f;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; VERSION as usize] = [
    r#"
CREATE TABLE ordo.workers (
    id bigserial PRIMARY KEY,
    name text COLLATE "C" NOT NULL UNIQUE,
    epoch int8 NOT NULL DEFAULT 1,
    alive bool NOT NULL DEFAULT true,
    lease_until timestamptz NOT NULL,
    commits int8 NOT NULL DEFAULT 0,
    registered_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE ordo.workflows (
    id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    status int2 NOT NULL,
    input bytea NOT NULL,
    output_ok bool,
    output bytea,
    created_ms int8 NOT NULL,
    updated_ms int8 NOT NULL,
    recovery_attempts int4 NOT NULL,
    app_version text,
    deadline_ms int8,
    owner int8
);
CREATE INDEX workflows_by_status ON ordo.workflows (status, id);
CREATE TABLE ordo.completions (
    workflow_id text COLLATE "C" NOT NULL,
    seq int8 NOT NULL,
    step_id int8 NOT NULL,
    name text NOT NULL,
    ok bool NOT NULL,
    value bytea NOT NULL,
    attempts int4 NOT NULL,
    started_ms int8 NOT NULL,
    ended_ms int8 NOT NULL,
    PRIMARY KEY (workflow_id, seq)
);
CREATE TABLE ordo.types (fingerprint int8 PRIMARY KEY, name text NOT NULL);
CREATE TABLE ordo.trace_contexts (
    workflow_id text COLLATE "C" PRIMARY KEY,
    traceparent text NOT NULL
);
CREATE TABLE ordo.messages (
    destination text COLLATE "C" NOT NULL,
    topic text COLLATE "C" NOT NULL,
    number int8 NOT NULL,
    payload bytea NOT NULL,
    sent_ms int8 NOT NULL,
    idempotency_key text,
    PRIMARY KEY (destination, topic, number)
);
CREATE TABLE ordo.message_keys (
    destination text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    PRIMARY KEY (destination, key)
);
CREATE TABLE ordo.events (
    workflow_id text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (workflow_id, key)
);
CREATE TABLE ordo.awakeables (
    workflow_id text COLLATE "C" NOT NULL,
    step_id int8 NOT NULL,
    ok bool NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (workflow_id, step_id)
);
CREATE TABLE ordo.queue_records (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE ordo.counters (name text PRIMARY KEY, value int8 NOT NULL);
INSERT INTO ordo.counters VALUES ('messages', 0);

-- Every commit calls this first: it counts the commit on the worker's row (the count
-- tells a worker whose connection broke during a commit whether that commit landed),
-- and refuses the whole transaction if the worker was fenced. Its row lock also orders
-- the commit against a takeover, which updates the same row.
CREATE FUNCTION ordo.fence(worker int8, expected_epoch int8) RETURNS int8
LANGUAGE plpgsql AS $$
DECLARE counted int8;
BEGIN
    UPDATE ordo.workers SET commits = commits + 1
        WHERE id = worker AND epoch = expected_epoch AND alive
        RETURNING commits INTO counted;
    IF counted IS NULL THEN
        RAISE EXCEPTION 'ordo worker % was fenced', worker USING ERRCODE = 'OR001';
    END IF;
    RETURN counted;
END $$;

-- Queue lanes whose limits every worker obeys together: how many of a lane's workflows
-- each worker runs (its slots; those of dead workers do not count), and the start times
-- in the lane's rate window.
CREATE TABLE ordo.queue_slots (
    lane bytea NOT NULL,
    worker int8 NOT NULL,
    held int8 NOT NULL,
    PRIMARY KEY (lane, worker)
);
CREATE TABLE ordo.queue_windows (lane bytea PRIMARY KEY, starts int8[] NOT NULL);

-- A worker says how many workflows of a lane it runs (`running`) and asks for up to
-- `want` more: it gets what the lane's concurrency and rate window leave, all workers
-- counted, one admission per lane at a time. A worker that runs fewer than before tells
-- the others (they may have work waiting for a slot).
CREATE FUNCTION ordo.admit(p_lane bytea, p_worker int8, p_epoch int8, p_concurrency int8,
    p_rate int8, p_period int8, p_now int8, p_running int8, p_want int8,
    OUT granted int8, OUT retry_at int8)
LANGUAGE plpgsql AS $$
DECLARE
    before int8;
    used int8;
    window_starts int8[];
BEGIN
    PERFORM 1 FROM ordo.workers WHERE id = p_worker AND epoch = p_epoch AND alive FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ordo worker % was fenced', p_worker USING ERRCODE = 'OR001';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(encode(p_lane, 'hex'), 1869768815));
    SELECT held INTO before FROM ordo.queue_slots WHERE lane = p_lane AND worker = p_worker;
    granted := greatest(p_want, 0);
    retry_at := NULL;
    IF p_concurrency IS NOT NULL THEN
        SELECT coalesce(sum(s.held), 0) INTO used FROM ordo.queue_slots s
            JOIN ordo.workers w ON w.id = s.worker
            WHERE s.lane = p_lane AND s.worker <> p_worker AND w.alive;
        granted := least(granted, greatest(p_concurrency - used - p_running, 0));
    END IF;
    IF p_rate IS NOT NULL AND granted > 0 THEN
        SELECT array(SELECT t FROM unnest(q.starts) t WHERE t + p_period > p_now ORDER BY t)
            INTO window_starts FROM ordo.queue_windows q WHERE q.lane = p_lane;
        window_starts := coalesce(window_starts, '{}');
        granted := least(granted, greatest(p_rate - cardinality(window_starts), 0));
        IF granted > 0 THEN
            window_starts := window_starts || array_fill(p_now, ARRAY[granted::int4]);
            INSERT INTO ordo.queue_windows VALUES (p_lane, window_starts)
                ON CONFLICT (lane) DO UPDATE SET starts = EXCLUDED.starts;
        END IF;
        IF granted < p_want AND cardinality(window_starts) >= p_rate THEN
            retry_at := window_starts[cardinality(window_starts) - p_rate + 1] + p_period;
        END IF;
    END IF;
    INSERT INTO ordo.queue_slots VALUES (p_lane, p_worker, p_running + granted)
        ON CONFLICT (lane, worker) DO UPDATE SET held = EXCLUDED.held;
    IF before IS NOT NULL AND p_running < before THEN
        PERFORM pg_notify('ordo_change', p_worker || ' q ' || encode(p_lane, 'hex'));
    END IF;
END $$;

-- Requests for the workers from processes that are no worker (the `ordo` CLI): the
-- workflow each is about, its body (the runtime's admin protocol), the worker that took
-- it, its reply. The asker deletes it once answered.
CREATE TABLE ordo.requests (
    id bigserial PRIMARY KEY,
    target text COLLATE "C",
    body text NOT NULL,
    taken_by int8,
    reply text,
    made timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Raised by a commit that would add a completion at or before a recorded seq.
CREATE FUNCTION ordo.out_of_order(workflow text, seq int8, after int8) RETURNS int8
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'completion seq % of workflow % is not after seq %', seq, workflow, after
        USING ERRCODE = 'OR002', DETAIL = seq || ' ' || after || ' ' || workflow;
END $$;
"#,
    r#"
-- A deduplication id is taken at the enqueue, before its commit, atomically across
-- workers (`reserve_holder`): until that commit writes the queue record again, the
-- reserving worker is named here, and the id stays taken while that worker lives.
ALTER TABLE ordo.queue_records ADD COLUMN reserved_by int8;
"#,
    r#"
-- The first step id of the workflow's current run (`WorkflowRecord::first_step`): a run
-- that continues as new hands its step numbering on. Earlier records number from 0.
ALTER TABLE ordo.workflows ADD COLUMN first_step int8 NOT NULL DEFAULT 0;
-- Whether the workflow's awakeable tokens are tagged with the journal's token key
-- (`WorkflowRecord::keyed_tokens`): earlier workflows keep the plain tokens they may have
-- handed out already.
ALTER TABLE ordo.workflows ADD COLUMN keyed_tokens bool NOT NULL DEFAULT false;
-- The token key, drawn once by the server (`gen_random_uuid` is random, PostgreSQL 13 on;
-- 122 of its 128 bits), shared by every worker.
CREATE TABLE ordo.token_key (key bytea NOT NULL);
INSERT INTO ordo.token_key VALUES (uuid_send(gen_random_uuid()));
"#,
];

/// Creates or migrates the schema to [`VERSION`].
pub(crate) async fn migrate(client: &mut Client) -> Result<(), Error> {
    let tx = client.transaction().await.map_err(db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS ordo;
         CREATE TABLE IF NOT EXISTS ordo.schema_version (version int4 NOT NULL);",
    )
    .await
    .map_err(db_error)?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM ordo.schema_version", &[])
        .await
        .map_err(db_error)?
        .map(|row| row.get(0));
    let found = found.unwrap_or(0);
    if found > VERSION {
        return Err(Error::UnsupportedVersion {
            what: "PostgreSQL journal schema".into(),
            found: u32::try_from(found).unwrap_or(0),
            supported: VERSION as u32,
        });
    }
    for migration in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
        tx.batch_execute(migration).await.map_err(db_error)?;
    }
    if found < VERSION {
        tx.execute("DELETE FROM ordo.schema_version", &[])
            .await
            .map_err(db_error)?;
        tx.execute("INSERT INTO ordo.schema_version VALUES ($1)", &[&VERSION])
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}
