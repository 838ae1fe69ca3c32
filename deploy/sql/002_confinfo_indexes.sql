-- Indexes for the history queries that come with DR and reports:
-- the conferences of a platform (its backup taking over, fail-back) and a
-- user domain's conferences over a time range (UPU and billing reports).
-- ADD KEY IF NOT EXISTS keeps it re-runnable (DDL commits implicitly).
ALTER TABLE confinfo
    ADD KEY IF NOT EXISTS k_home_state (home_platform, state),
    ADD KEY IF NOT EXISTS k_domain_start (user_domain, start_ms);
