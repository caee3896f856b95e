-- Fixed-window counters that throttle unauthenticated or costly work (codes
-- sent per address, per client and per application; key rotations). One row
-- per key; a request claims a unit with one atomic upsert.
CREATE TABLE throttle_windows (
    key        TEXT PRIMARY KEY NOT NULL,
    started_at BIGINT NOT NULL,
    used       BIGINT NOT NULL
);
CREATE INDEX throttle_windows_by_start ON throttle_windows (started_at);
