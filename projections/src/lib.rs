//! Registre's read models, folded from the event log: the parent and student
//! view, the teacher and education staff views, the stats view and the usage
//! indicators. They live in memory on every node ([`ReadModel`]), are kept up
//! to date by a [`ProjectionEngine`] that follows the log, and are snapshotted
//! to the store so that a restart resumes from the snapshot, not from zero.
//!
//! Why in memory: one fold serves both store backends, queries never make a
//! database round trip (a guardian's dashboard is a handful of map look-ups),
//! and a rebuild runs at the speed of deserialising events. The log stays the
//! only truth: the model can always be thrown away and folded again.
//!
//! Entry points for the API:
//! - [`ProjectionEngine::start`], [`ProjectionEngine::read`],
//!   [`ProjectionEngine::wait_for`] (read-your-writes), [`ProjectionEngine::metrics`],
//!   [`ProjectionEngine::rebuild`], [`ProjectionEngine::shutdown`];
//! - the query methods of [`ReadModel`] (roster look-ups and command facts in
//!   `views`, the teacher views in `teacher`, the stats in `stats`, usage in `usage`);
//! - [`fold_until`] and [`replay_to_dir`] for auditors.

pub mod engine;
pub mod model;
pub mod replay;
pub mod stats;
pub mod teacher;
pub mod usage;
pub mod views;

pub use engine::{
    EngineConfig, Lagging, ProjectionEngine, ProjectionError, ProjectionMetrics, RebuildProgress,
    RebuildReport,
};
pub use model::{
    Absence, ApplyError, Assessment, Establishment, Grade, Homework, Message, Person, ReadModel,
    SchoolClass, Student, Teaching, Thread,
};
pub use replay::{fold_until, replay_to_dir, write_views, ReplayManifest, ReplayProgress};
pub use stats::{
    AbsenceStats, GradeDistribution, HalfDay, StudentMonth, WeeklyAbsenceRate,
    ABSENTEEISM_THRESHOLD,
};
pub use teacher::{
    AssessmentStats, Gradebook, GradebookColumn, GradebookRow, HomeworkDay, RollCall, RollCallRow,
};
pub use usage::{PseudonymKey, UsageIndicators, UsageSummary};
pub use views::{GradeView, MessageView, StudentRecord, SubjectAverage};
