//! Helpers to read golden logs (JSON lines) for the replay tests.
