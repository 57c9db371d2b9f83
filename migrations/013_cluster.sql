-- 013_cluster.sql: the shared state of a meterd cluster (meterd serve
-- --cluster). Several nodes share one database; each keeps its own bbolt
-- ledger and decides locally. Nothing here is used by a single node. The
-- version is the number of the issue that introduced it, leaving 006-012 to
-- files other work adds; goose accepts the gap.
--
-- Correctness rests only on row-level conditional writes (INSERT ... ON
-- CONFLICT ... DO UPDATE ... WHERE, UPDATE ... RETURNING) and on expiry
-- columns compared with the database's clock: no advisory locks, no
-- LISTEN/NOTIFY, no serializable isolation. The same statements run on
-- CockroachDB and YugabyteDB (see docs/ARCHITECTURE.md, "Cluster mode").
--
-- Every statement is re-runnable.

-- +goose Up

-- meterd_nodes: the node registry. A node upserts its row every heartbeat;
-- a node whose heartbeat_at is older than a few intervals is presumed dead
-- (its leases stay counted until it returns or is released).
CREATE TABLE IF NOT EXISTS meterd_nodes (
    node_id        text COLLATE "C" NOT NULL,
    address        text        NOT NULL DEFAULT '',
    started_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    export_backlog bigint      NOT NULL DEFAULT 0,
    leases_held    bigint      NOT NULL DEFAULT 0,
    applied_revision bigint    NOT NULL DEFAULT 0,
    CONSTRAINT meterd_nodes_pkey PRIMARY KEY (node_id)
);

-- meterd_quota_grants: per account and period, how many admissions of a
-- hard-limited plan the cluster has handed out. The grant statement
-- raises granted by at most limit_calls - granted in one conditional
-- upsert, so the sum of admissions can never pass the limit. last_grant
-- is what the latest statement added (RETURNING cannot see the old row).
CREATE TABLE IF NOT EXISTS meterd_quota_grants (
    account_id   text COLLATE "C" NOT NULL,
    period_start timestamptz NOT NULL,
    granted      bigint      NOT NULL DEFAULT 0,
    last_grant   bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT meterd_quota_grants_pkey PRIMARY KEY (account_id, period_start),
    CONSTRAINT meterd_quota_grants_granted_check CHECK (granted >= 0)
);

-- meterd_quota_leases: which node holds how much of a grant. granted is
-- the node's admissions plus the allowance it still holds; it falls when a
-- node returns unused allowance (shutdown, restart settlement) and the
-- row goes when an operator releases a dead node. expires_at marks a
-- lease whose holder stopped renewing it: an expired lease is still
-- counted (never re-granted) until its node settles or is released.
CREATE TABLE IF NOT EXISTS meterd_quota_leases (
    node_id      text COLLATE "C" NOT NULL,
    account_id   text COLLATE "C" NOT NULL,
    period_start timestamptz NOT NULL,
    granted      bigint      NOT NULL DEFAULT 0,
    expires_at   timestamptz NOT NULL,
    CONSTRAINT meterd_quota_leases_pkey PRIMARY KEY (node_id, account_id, period_start),
    CONSTRAINT meterd_quota_leases_granted_check CHECK (granted >= 0)
);

-- meterd_revision: one row, the cluster's admin-change counter. Every
-- admin write takes the next revision in the same transaction as the row
-- it changes; the row lock orders those transactions, so revisions commit
-- in order and a node polling "revision > mine" never skips one.
CREATE TABLE IF NOT EXISTS meterd_revision (
    id       integer NOT NULL DEFAULT 1,
    revision bigint  NOT NULL DEFAULT 0,
    CONSTRAINT meterd_revision_pkey PRIMARY KEY (id),
    CONSTRAINT meterd_revision_one_row CHECK (id = 1)
);
INSERT INTO meterd_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- meterd_accounts and meterd_keys: the shared accounts and key hashes
-- (never plaintext keys). body is the record as meterd's JSON encodes it;
-- revision is the change that wrote the row last.
CREATE TABLE IF NOT EXISTS meterd_accounts (
    account_id text COLLATE "C" NOT NULL,
    body       text   NOT NULL,
    revision   bigint NOT NULL,
    CONSTRAINT meterd_accounts_pkey PRIMARY KEY (account_id)
);
CREATE INDEX IF NOT EXISTS meterd_accounts_revision_idx ON meterd_accounts (revision);

CREATE TABLE IF NOT EXISTS meterd_keys (
    key_id     text COLLATE "C" NOT NULL,
    account_id text COLLATE "C" NOT NULL,
    key_hash   text COLLATE "C" NOT NULL,
    body       text   NOT NULL,
    revision   bigint NOT NULL,
    CONSTRAINT meterd_keys_pkey PRIMARY KEY (key_id)
);
CREATE INDEX IF NOT EXISTS meterd_keys_revision_idx ON meterd_keys (revision);

-- meterd_node_counts: each node's own counts per account and period,
-- published every second; a node answers cluster-wide reads with its own
-- exact counts plus the others' rows.
CREATE TABLE IF NOT EXISTS meterd_node_counts (
    node_id      text COLLATE "C" NOT NULL,
    account_id   text COLLATE "C" NOT NULL,
    period_start timestamptz NOT NULL,
    calls        bigint      NOT NULL DEFAULT 0,
    overage      bigint      NOT NULL DEFAULT 0,
    denied       bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT meterd_node_counts_pkey PRIMARY KEY (node_id, account_id, period_start)
);

-- No Down section: cluster state is never dropped automatically.
