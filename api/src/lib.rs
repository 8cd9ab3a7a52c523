//! The Registre server.
