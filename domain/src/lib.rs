//! The pure domain of Registre: what can happen in a school life record, and
//! what may not. Synchronous and free of IO: no database, no GraphQL, no clock
//! (time is passed in). Commands are decided against a compact state that the
//! caller looks up first; a rejection is a [`DomainError`] and produces no event.

pub mod absences;
pub mod aggregate;
pub mod codec;
pub mod error;
pub mod events;
pub mod grades;
pub mod homework;
pub mod ids;
pub mod messages;
pub mod roster;
pub mod streams;
pub mod testing;
pub mod text;
pub mod values;

pub use aggregate::Aggregate;
pub use error::DomainError;
pub use events::DomainEvent;
pub use ids::*;
pub use streams::StreamName;
pub use values::*;
