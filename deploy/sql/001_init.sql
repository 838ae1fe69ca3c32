-- confdr schema, version 1: conference history and public templates.
-- Applied by cdr_db_migrate_sync (css at start-up). Never edit an applied
-- migration: add NNN_next.sql. Statements are re-runnable (IF NOT EXISTS)
-- because MariaDB commits DDL implicitly.

-- One row per conference: written at create ACK, closed at end with the
-- reason. Keyed by E164 and start, as the CM re-uses E164 numbers over time.
CREATE TABLE IF NOT EXISTS confinfo (
    id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    e164               VARCHAR(32)  NOT NULL,
    name               VARCHAR(255) NOT NULL DEFAULT '',
    user_domain        VARCHAR(64)  NOT NULL,
    home_platform      VARCHAR(64)  NOT NULL COMMENT 'platform owning the user domain',
    host_platform      VARCHAR(64)  NULL     COMMENT 'platform whose MCU runs it',
    room               VARCHAR(64)  NULL,
    mcu                VARCHAR(64)  NULL,
    vrs                VARCHAR(64)  NULL,
    state              ENUM('creating','running','pending_restore','restoring','ending','ended')
                       NOT NULL DEFAULT 'creating',
    create_json        JSON         NULL     COMMENT 'the original create request, MCU and VRS set',
    start_ms           BIGINT       NOT NULL COMMENT 'ms since the epoch',
    planned_end_ms     BIGINT       NULL,
    end_ms             BIGINT       NULL,
    end_reason         VARCHAR(64)  NULL,
    restore_generation INT UNSIGNED NOT NULL DEFAULT 0,
    epoch              BIGINT       NOT NULL DEFAULT 0 COMMENT 'epoch of the css decision that wrote it',
    created_at         TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at         TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY uk_e164_start (e164, start_ms),
    KEY k_domain_state (user_domain, state),
    KEY k_mcu_state (mcu, state),
    KEY k_state_end (state, planned_end_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Public conference templates, published by css into Redis.
CREATE TABLE IF NOT EXISTS conf_template (
    id          VARCHAR(64)  NOT NULL PRIMARY KEY,
    user_domain VARCHAR(64)  NOT NULL,
    name        VARCHAR(255) NOT NULL,
    details     JSON         NOT NULL,
    updated_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    KEY k_domain (user_domain)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
