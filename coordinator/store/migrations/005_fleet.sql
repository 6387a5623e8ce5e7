-- Kiosk and lab fleets (coordinator/fleet/): enrollment tokens an owner issues, the devices
-- that redeemed them, the sessions those devices carry in their hello, and the owner's
-- remote pause, re-sent when a device reconnects. Times are BIGINT ms since epoch.

CREATE TABLE enrollment_tokens (
  id TEXT PRIMARY KEY,
  -- The owner's wallet, raw form `0:<hex>`.
  owner TEXT NOT NULL,
  label TEXT NOT NULL,
  scope TEXT NOT NULL,
  -- SHA-256 of the secret, lowercase hex; never the secret.
  secret_sha256 TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  max_devices INTEGER NOT NULL CHECK (max_devices >= 1),
  revoked_at BIGINT
);

CREATE INDEX enrollment_tokens_owner_idx ON enrollment_tokens (owner, created_at);

-- Device identity keys (base64url Ed25519) bound to a token, at most `max_devices` per token.
CREATE TABLE enrollment_devices (
  token_id TEXT NOT NULL REFERENCES enrollment_tokens (id),
  device_key TEXT NOT NULL,
  bound_at BIGINT NOT NULL,
  PRIMARY KEY (token_id, device_key)
);

-- One live session per enrolled device (a new enrollment replaces it).
CREATE TABLE enrollment_sessions (
  contributor_id TEXT PRIMARY KEY,
  token_id TEXT NOT NULL REFERENCES enrollment_tokens (id),
  device_key TEXT NOT NULL,
  -- The device's name on the owner's fleet page.
  label TEXT NOT NULL,
  session_sha256 TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);

CREATE INDEX enrollment_sessions_token_idx ON enrollment_sessions (token_id);

-- What the owner last told a device from the fleet page.
CREATE TABLE fleet_controls (
  contributor_id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  paused BOOLEAN NOT NULL,
  message TEXT,
  updated_at BIGINT NOT NULL
);
