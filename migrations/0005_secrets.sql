-- Secret material is sealed (AES-256-GCM, see services/config/src/secrets_key.rs) in its own
-- column; `spec` of a secret holds only its summary (type, subjects, serials, expiry,
-- fingerprints), which is what audit rows, change events and API responses carry.
ALTER TABLE resources ADD COLUMN sealed bytea;
