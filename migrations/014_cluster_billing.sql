-- 014_cluster_billing.sql: one bill and cluster-wide usage reads for a
-- meterd cluster. Billing runs on one node at a time, chosen by the lease
-- row below, and its intents and
-- per-period state live here instead of in each node's ledger, so a node
-- that takes over after a crash resumes the same intents with the same
-- idempotency keys. Like 013, correctness rests on row-level conditional
-- writes only (see docs/ARCHITECTURE.md, "Cluster mode").
--
-- Every statement is re-runnable.

-- +goose Up

-- The price of each node's published overage, so the billing node can
-- bill other nodes' overage at the rate of the plan in force when each
-- call was made.
ALTER TABLE meterd_node_counts ADD COLUMN IF NOT EXISTS overage_micros bigint NOT NULL DEFAULT 0;

-- meterd_billing_lease: one row. holder is the billing run that may write
-- intents ('' when free); a run takes it with a conditional UPDATE when it
-- is free, expired or already its own, and renews it while it lives.
-- last_run is the slot of the last scheduled run that completed.
CREATE TABLE IF NOT EXISTS meterd_billing_lease (
    id         integer     NOT NULL DEFAULT 1,
    holder     text        NOT NULL DEFAULT '',
    expires_at timestamptz NOT NULL DEFAULT '1970-01-01T00:00:00Z',
    last_run   timestamptz,
    CONSTRAINT meterd_billing_lease_pkey PRIMARY KEY (id),
    CONSTRAINT meterd_billing_lease_one_row CHECK (id = 1)
);
INSERT INTO meterd_billing_lease (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

-- meterd_billing_states: what has been billed per account and period
-- (meter.BillingState as JSON).
CREATE TABLE IF NOT EXISTS meterd_billing_states (
    account_id   text COLLATE "C" NOT NULL,
    period_start timestamptz NOT NULL,
    body         text        NOT NULL,
    CONSTRAINT meterd_billing_states_pkey PRIMARY KEY (account_id, period_start)
);

-- meterd_billing_intents: every overage charge (meter.BillingIntent as
-- JSON), written before it is sent; open marks pending and sent ones.
CREATE TABLE IF NOT EXISTS meterd_billing_intents (
    account_id   text COLLATE "C" NOT NULL,
    period_start timestamptz NOT NULL,
    seq          bigint      NOT NULL,
    open         boolean     NOT NULL,
    body         text        NOT NULL,
    CONSTRAINT meterd_billing_intents_pkey PRIMARY KEY (account_id, period_start, seq)
);
CREATE INDEX IF NOT EXISTS meterd_billing_intents_period_idx ON meterd_billing_intents (period_start, account_id, seq);
CREATE INDEX IF NOT EXISTS meterd_billing_intents_open_idx ON meterd_billing_intents (open);

-- meterd_node_daily: each node's own usage per account, UTC day and
-- endpoint (endpoint and method '' for the account's day), published with
-- its counts, so /api/usage/history, /api/usage/endpoints and the admin
-- overview on any node answer for the cluster: own ledger plus the
-- others' rows.
CREATE TABLE IF NOT EXISTS meterd_node_daily (
    node_id        text COLLATE "C" NOT NULL,
    account_id     text COLLATE "C" NOT NULL,
    usage_date     date   NOT NULL,
    endpoint       text COLLATE "C" NOT NULL,
    method         text COLLATE "C" NOT NULL,
    api_calls      bigint NOT NULL DEFAULT 0,
    overage_calls  bigint NOT NULL DEFAULT 0,
    denied_calls   bigint NOT NULL DEFAULT 0,
    errors         bigint NOT NULL DEFAULT 0,
    client_errors  bigint NOT NULL DEFAULT 0,
    latency_sum_us bigint NOT NULL DEFAULT 0,
    latency_count  bigint NOT NULL DEFAULT 0,
    CONSTRAINT meterd_node_daily_pkey PRIMARY KEY (node_id, account_id, usage_date, endpoint, method)
);
CREATE INDEX IF NOT EXISTS meterd_node_daily_day_idx ON meterd_node_daily (usage_date, account_id);

-- No Down section: billing records are never dropped automatically.
